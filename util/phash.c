/* phash.c: the persisted hash declared in phash.h (FNV-1a 64 + splitmix64 finaliser). */
#include "util/phash.h"

uint64_t phash_update(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t phash_final(uint64_t h)
{
    h ^= h >> 30;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h *= UINT64_C(0x94d049bb133111eb);
    h ^= h >> 31;
    return h;
}

uint64_t phash(const void *p, size_t n)
{
    return phash_final(phash_update(PHASH_INIT, p, n));
}
