/* phash.h: the persisted hash, FNV-1a 64 followed by the splitmix64
 * finaliser.  Its values are saved on disk (kvstore inode numbers, vfs
 * catalog and marker file names, readdir cookies), so it is defined once,
 * here, and must never change: tests/util/test_phash.c pins known values. */
#ifndef TARNFS_PHASH_H
#define TARNFS_PHASH_H

#include <stddef.h>
#include <stdint.h>

/* The FNV-1a 64 offset basis: the state before any byte. */
#define PHASH_INIT UINT64_C(0xcbf29ce484222325)

/* Feed n bytes of p into state h (FNV-1a 64); returns the new state. */
uint64_t phash_update(uint64_t h, const void *p, size_t n);

/* The hash of state h (splitmix64 finaliser: FNV alone mixes its last
 * bytes weakly, and names in one directory often differ only there). */
uint64_t phash_final(uint64_t h);

/* phash_final(phash_update(PHASH_INIT, p, n)). */
uint64_t phash(const void *p, size_t n);

#endif
