/* nlm_lock.h: the lock table behind NLM: POSIX byte-range locks (shared and
 * exclusive, split, merged and upgraded per owner), the queue of blocked
 * lock requests, and DOS share reservations, all in memory and keyed by
 * file id (a vfs_id, stable across eviction and restart of the namespace).
 * One mutex guards it; nothing in here waits for the network.  Every
 * per-host resource has a limit (doc/design.md, "File locking (NLM)").
 *
 * An owner is (host, svid, oh): the caller name the client sent, its
 * process id and its opaque owner handle.  Ranges are [offset, offset+len)
 * with len 0 meaning "to the end of every possible file". */
#ifndef TARNFS_NFSD_NLM_LOCK_H
#define TARNFS_NFSD_NLM_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "vfs/vfs.h"

#define NLM_OH_MAX   1024       /* owner handle bytes (the protocol's netobj) */
#define NLM_HOST_MAX 1024       /* caller name bytes */

#define NLM_ADDR_MAX 64         /* a peer address as text */

struct nlm_owner {
    const char *host;           /* caller_name, NUL-terminated */
    const char *addr;           /* the peer's address as text (NULL: none);
                                   a host is a caller name from one address */
    int32_t svid;
    const uint8_t *oh;
    size_t ohlen;
};

/* The lock that stands in the way of a request (TEST's answer). */
struct nlm_holder {
    bool exclusive;
    int32_t svid;
    uint8_t oh[NLM_OH_MAX];
    size_t ohlen;
    uint64_t offset, len;       /* len 0: to the end */
};

/* Where to tell a blocked request's client that it was granted: kept with
 * the queued request, opaque to the table. */
#define NLM_CB_FH_MAX 64
struct nlm_callback {
    struct sockaddr_storage addr;   /* the client, as the LOCK came */
    bool tcp;                       /* the LOCK came over TCP */
    uint8_t fh[NLM_CB_FH_MAX];      /* the file handle it locked, as sent */
    size_t fhlen;
};

/* A blocked request that a release has just granted: the lock is already
 * the owner's; the client learns it through an NLM GRANTED callback.
 * Handed to the table's grant function, valid only during the call. */
struct nlm_grant {
    const struct vfs_id *file;
    const char *host;
    int32_t svid;
    const uint8_t *oh;
    size_t ohlen;
    bool exclusive;
    uint64_t offset, len;
    const struct nlm_callback *cb;
};

/* Limits; 0 in any field means its default (in brackets). */
struct nlm_limits {
    unsigned max_locks;             /* lock ranges in all [65536] */
    unsigned max_locks_per_host;    /* lock ranges one client address holds,
                                       all its caller names together [4096] */
    unsigned max_waiters;           /* blocked requests queued in all [4096] */
    unsigned max_waiters_per_host;  /* blocked requests of one client address [256] */
    unsigned max_shares_per_host;   /* share reservations of one client address [1024] */
    unsigned max_hosts;             /* caller names holding anything [4096] */
    unsigned max_names_per_addr;    /* caller names from one peer address [16] */
};

struct nlm_hooks {
    /* A blocked request was granted (called with the table's mutex held:
     * must not block or call back into the table). */
    void (*granted)(void *arg, const struct nlm_grant *g);
    /* The first caller name from peer address addr came to hold a lock,
     * share or queued request (first = true), or the last such went
     * (false): statd monitors peers by address.  Same rules as granted. */
    void (*monitor)(void *arg, const char *addr, bool first);
    void *arg;
};

enum nlm_result {
    NLM_OK,             /* granted, unlocked, cancelled, shared */
    NLM_CONFLICT,       /* denied: another owner holds a conflicting lock */
    NLM_QUEUED,         /* blocked: queued, to be granted by callback */
    NLM_NOLOCKS,        /* denied: a limit (or memory) is reached */
    NLM_RANGE,          /* offset + len is past 2^64 */
};

struct nlm_table;

/* A new, empty table; hooks may be NULL.  Errors: ENOMEM. */
int nlm_table_create(const struct nlm_limits *lim, const struct nlm_hooks *hooks,
                     struct nlm_table **out);

/* Free the table and everything in it (no hooks are called). */
void nlm_table_destroy(struct nlm_table *t);

/* Would o get this lock?  NLM_OK, or NLM_CONFLICT with the first
 * conflicting lock in *h (may be NULL), or NLM_RANGE. */
enum nlm_result nlm_test(struct nlm_table *t, const struct vfs_id *file,
                         const struct nlm_owner *o, bool exclusive,
                         uint64_t offset, uint64_t len, struct nlm_holder *h);

/* Take a lock for o, replacing o's own locks in the range (upgrade,
 * downgrade, merge).  On a conflict: with block, the request is queued
 * (NLM_QUEUED; once only: a retry of a queued request is NLM_QUEUED again)
 * and granted through hooks.granted when the conflict goes; cb (copied,
 * may be NULL) says where to call back.  Without block: NLM_CONFLICT.  NLM_NOLOCKS when a
 * limit is reached, NLM_RANGE for a range past 2^64. */
enum nlm_result nlm_lock(struct nlm_table *t, const struct vfs_id *file,
                         const struct nlm_owner *o, bool exclusive,
                         uint64_t offset, uint64_t len, bool block,
                         const struct nlm_callback *cb);

/* Release o's locks in the range (splitting a lock that covers more), then
 * grant queued requests that now fit.  NLM_OK (also when o held nothing
 * there), NLM_NOLOCKS when a split needs memory it cannot get, NLM_RANGE. */
enum nlm_result nlm_unlock(struct nlm_table *t, const struct vfs_id *file,
                           const struct nlm_owner *o, uint64_t offset, uint64_t len);

/* Drop o's queued request for exactly this lock: NLM_OK, or NLM_CONFLICT
 * when there is none (granted meanwhile, or never queued). */
enum nlm_result nlm_cancel(struct nlm_table *t, const struct vfs_id *file,
                           const struct nlm_owner *o, bool exclusive,
                           uint64_t offset, uint64_t len);

/* DOS share reservation: access and deny are bit sets (1 read, 2 write).
 * NLM_OK (replacing o's earlier one on the file), NLM_CONFLICT, NLM_NOLOCKS.
 * Only o.host and o.oh name the owner of a share. */
enum nlm_result nlm_share(struct nlm_table *t, const struct vfs_id *file,
                          const struct nlm_owner *o, unsigned access, unsigned deny);

/* Remove o's share reservation on the file (none: still NLM_OK). */
enum nlm_result nlm_unshare(struct nlm_table *t, const struct vfs_id *file,
                            const struct nlm_owner *o);

/* Everything host (caller name host from address addr, NULL: none) holds
 * or waits for goes (FREE_ALL), and queued requests of others that now fit
 * are granted.  Returns the number of locks, shares and queued requests
 * dropped. */
size_t nlm_free_host(struct nlm_table *t, const char *host, const char *addr);

/* As nlm_free_host for every caller name whose address is addr (statd's
 * reboot notice names the peer as it was monitored: by address). */
size_t nlm_free_addr(struct nlm_table *t, const char *addr);

/* Counts for stats and tests. */
struct nlm_counts { size_t files, locks, waiters, shares, hosts; };
void nlm_table_counts(struct nlm_table *t, struct nlm_counts *out);

#endif
