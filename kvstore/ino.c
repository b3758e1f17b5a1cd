/* ino.c: deterministic inode numbers, stable across re-ingest (NFS handles survive). */
#include "kvstore/kv_internal.h"

#include <string.h>

/* FNV-1a 64 over name, a NUL separator and path, then the splitmix64
 * finalizer: FNV-1a alone mixes its last bytes weakly, and paths in one
 * directory often differ only there.  Folded to 63 bits (NFS clients and
 * some tools treat fileids as signed) and lifted above the reserved range. */
kv_ino kv_ino_for(const char *name, const char *path)
{
    uint64_t h = UINT64_C(14695981039346656037);
    const uint64_t prime = UINT64_C(1099511628211);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * prime;
    h = (h ^ 0) * prime;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        h = (h ^ *p) * prime;
    h ^= h >> 30;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h *= UINT64_C(0x94d049bb133111eb);
    h ^= h >> 31;
    h &= KV_MAX_INO;
    if (h < KV_MIN_INO)
        h += KV_MIN_INO;
    return h;
}
