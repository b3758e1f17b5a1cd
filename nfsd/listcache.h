/* listcache.h: encoded READDIR and READDIRPLUS results of directories that
 * cannot have changed (vfs_listing_stamp), kept within a byte budget, so a
 * directory listed again, by any client, is answered with a copy. */
#ifndef TARNFS_NFSD_LISTCACHE_H
#define TARNFS_NFSD_LISTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfs/vfs.h"

/* What a listing page depends on besides its directory's contents. */
struct listcache_key {
    struct vfs_id dir;
    uint64_t stamp;             /* vfs_listing_stamp of dir */
    uint64_t cookie;
    uint64_t verf;              /* the cookie verifier the client sent */
    uint32_t limit, dir_limit;  /* reply bytes and dircount, as clamped */
    uint64_t exports;           /* the exports table's serial (".." of an
                                   export's root, and its id, depend on it) */
    uint8_t export_id;          /* handles carry it */
    bool plus;
};

struct listcache;

/* A cache of at most budget bytes (entries included).  Errors: ENOMEM. */
int listcache_new(uint64_t budget, struct listcache **out);

/* Free lc and what it holds (NULL: nothing). */
void listcache_free(struct listcache *lc);

/* A malloc'd copy of the result kept for k into *buf (*len bytes), the
 * entry then used most recently.  Errors: ENOENT (none), ENOMEM. */
int listcache_get(struct listcache *lc, const struct listcache_key *k,
                  uint8_t **buf, size_t *len);

/* Keep a copy of the len bytes at buf for k (replacing one kept), dropping
 * the least recently used entries to stay within the budget; a result over
 * 1/128 of it is not kept.  Errors: EFBIG (not kept), ENOMEM. */
int listcache_put(struct listcache *lc, const struct listcache_key *k,
                  const uint8_t *buf, size_t len);

/* What lc holds and did: bytes and entries now, results handed out
 * (hits) and looked for in vain (misses) since it was made. */
struct listcache_usage {
    uint64_t bytes, entries, hits, misses;
};
void listcache_usage(struct listcache *lc, struct listcache_usage *u);

#endif
