/* drc.h: the duplicate-request cache: the replies of recent non-idempotent
 * NFS calls (CREATE, REMOVE, RENAME, ...), so that a retransmission, also
 * over a new connection, gets the first reply instead of being run again
 * (a spurious NOENT or EXIST).  Bounded in entries, bytes and age. */
#ifndef TARNFS_NFSD_DRC_H
#define TARNFS_NFSD_DRC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nfsd/rpc_server.h"

#define DRC_MAX_ENTRIES 4096            /* replies kept, all clients */
#define DRC_MAX_BYTES   (4u << 20)      /* their bytes, entries included */
#define DRC_MAX_REPLY   4096            /* a longer reply is not kept */
#define DRC_MAX_AGE_MS  120000          /* an older entry is not replayed */
#define DRC_BUCKETS     4096

/* What identifies a call: xid, the peer's address (not its port: a client
 * that reconnects may get another one), program, version, procedure, and a
 * keyed hash of the arguments (credentials and all after them). */
struct drc_key {
    uint32_t xid, prog, vers, proc;
    uint8_t addr[16];           /* v4 as v4-mapped v6 */
    uint64_t body;
};

struct drc_entry;

struct drc {
    bool on;                    /* set by drc_init */
    pthread_mutex_t lock;
    struct drc_entry *buckets[DRC_BUCKETS];
    struct drc_entry *newest, *oldest;      /* LRU list */
    size_t n, bytes;
};

enum drc_state {
    DRC_MISS,       /* not seen: run it, then drc_done or drc_abandon */
    DRC_HIT,        /* *reply is a copy of the first reply: send it */
    DRC_BUSY,       /* the first is still running: send nothing (the
                       client retransmits and then hits) */
};

/* Start an empty cache.  No errors. */
void drc_init(struct drc *d);

/* Free every entry (shutdown; no call may be running). */
void drc_free(struct drc *d);

/* Look k up.  MISS records k as running (when a slot can be had: the
 * oldest finished entries make room); HIT fills *reply (malloc'd, with
 * RPC_REPLY_HEADROOM, as a handler's).  Out of memory is a MISS.  An off
 * cache (not initialised) always misses. */
enum drc_state drc_begin(struct drc *d, const struct drc_key *k,
                         struct rpc_reply_out *reply);

/* Keep the reply of the running call k (a copy; too long: dropped). */
void drc_done(struct drc *d, const struct drc_key *k, const struct rpc_reply_out *reply);

/* Forget the running call k (its reply must not be replayed, e.g. JUKEBOX). */
void drc_abandon(struct drc *d, const struct drc_key *k);

#endif
