/* nfsd.h: the server state shared by the dispatcher and the NFS and MOUNT
 * procedures, the per-call context, and the procedure descriptor tables. */
#ifndef TARNFS_NFSD_NFSD_H
#define TARNFS_NFSD_NFSD_H

#include <pthread.h>
#include <rpc/rpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nfsd/config.h"
#include "nfsd/drc.h"
#include "nfsd/fhandle.h"
#include "nfsd/metrics.h"
#include "nfsd/rpc_server.h"
#include "util/log.h"
#include "vfs/vfs.h"

#define NFS_PROG   100003u
#define NFS_VERS   3u
#define MOUNT_PROG 100005u
#define MOUNT_VERS 3u
/* NLM (program 100021, version 4) is nfsd/nlm.h's. */

struct nlm_table;
struct nlm_cb;

/* NFS reads and writes go up to this size (FSINFO rtmax/wtmax) on TCP; on
 * UDP, READ data, directory listings and FSINFO stop at NFSD_UDP_MAX_IO. */
#define NFSD_MAX_IO (1024 * 1024)
#define NFSD_UDP_MAX_IO RPC_UDP_MAX_DATA

/* The MOUNT list (DUMP's answer) is advisory, so it is bounded: entries
 * are (host, canonical path) pairs, hashed by host; a host keeps at most
 * NFSD_MOUNTS_PER_HOST of them and the server NFSD_MOUNTS_MAX; a MNT past
 * either still succeeds but is not listed.  DUMP answers at most
 * NFSD_DUMP_MAX entries (the rpcgen list encoder recurses once per entry). */
#define NFSD_MOUNTS_MAX      4096
#define NFSD_MOUNTS_PER_HOST 64
#define NFSD_MOUNT_BUCKETS   1024
#define NFSD_DUMP_MAX        4096
/* Over UDP, where a caller's address can be forged, DUMP lists only the
 * caller's own entries, in at most NFSD_DUMP_UDP_BYTES of list: a forged
 * call must not turn into a large reply sent to its victim. */
#define NFSD_DUMP_UDP_BYTES  1024

struct mount_entry {
    struct mount_entry *next;
    char *host, *path;
};

struct nfsd {
    vfs *vfs;
    bool vfs_read_only;
    struct fh_key key;
    struct fh_cache *fhc;           /* handles made (NULL: none kept) */
    struct listcache *listcache;    /* listings kept (NULL: none) */
    uint8_t write_verf[8];          /* new on every start */
    pthread_mutex_t lock;           /* exports pointer and mount list */
    struct exports *exports;
    struct mount_entry *mounts[NFSD_MOUNT_BUCKETS];   /* by host hash */
    size_t nmounts;
    bool mounts_full_logged;
    struct log_limit mnt_log;       /* MNT log lines (any host can cause them) */
    struct drc drc;                 /* off unless drc_init'ed */
    /* NLM (nfsd/nlm.h): NULL until nlm_start; NLM calls are then refused
     * with NLM4_DENIED_NOLOCKS. */
    struct nlm_table *nlm;
    struct nlm_cb *nlm_cb;
    long long nlm_grace_until_ms;   /* tclock_mono_ms; 0: no grace period */
    struct log_limit nlm_log;       /* NLM log lines any host can cause */
    struct nfsd_metrics *metrics;   /* NULL: no metrics_listen, nothing counted */
};

/* Caller credentials after squashing. */
#define NFSD_MAX_GIDS 16
struct nfs_cred {
    uint32_t uid, gid;
    uint32_t ngids;
    uint32_t gids[NFSD_MAX_GIDS];
};

/* A bump allocator for one call's results: freed in one go after the reply
 * is encoded, so results never live in static storage. */
struct arena_chunk;
struct arena { struct arena_chunk *head; };
/* Zeroed memory that lives until the call ends; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
void arena_free(struct arena *a);

/* Everything a procedure handler knows about its call. */
struct rpc_ctx {
    struct nfsd *srv;
    const struct sockaddr *peer;
    bool is_tcp;
    size_t max_reply;
    uint32_t flavor;                /* AUTH_NONE or AUTH_SYS */
    struct nfs_cred raw_cred;       /* as sent (anon for AUTH_NONE) */
    struct nfs_cred cred;           /* after the export's squash options */
    struct exports *exports;        /* referenced for the call */
    const struct export *exp;       /* export of the first handle (NFS) */
    const struct export_opts *opts; /* this client's options on exp */
    struct vfs_id id;               /* the first handle's node (NFS) */
    struct arena arena;
    /* 0, or an upper bound of the encoded result's size set by a handler of
     * big replies: the reply is then encoded once into a buffer of that size
     * instead of walked twice (xdr_sizeof, then the encoding). */
    size_t reply_size_hint;
    /* NULL, or malloc'd bytes to send after the encoded reply, which is
     * then encoded with reply_head_proc instead of the procedure's own
     * (READ: the data goes out from the buffer it was read into).  The
     * dispatcher owns it once set: it sends or frees it. */
    uint8_t *reply_tail;
    size_t reply_tail_len;
    xdrproc_t reply_head_proc;
};

/* The largest READ count, READDIR(PLUS) reply and FSINFO rtmax/wtmax/dtpref
 * for the call's transport. */
static inline size_t nfsd_max_io(const struct rpc_ctx *c)
{
    return c->is_tcp ? NFSD_MAX_IO : NFSD_UDP_MAX_IO;
}

/* Procedure flags read by the dispatcher. */
enum {
    PROC_NEEDS_FH  = 1 << 0,        /* args start with an nfs_fh3 to check */
    PROC_MODIFIES  = 1 << 1,        /* refused with ROFS on ro exports */
    PROC_DRC       = 1 << 2,        /* not idempotent: replies kept in the DRC */
};

/* A procedure number a program leaves unused has a NULL handler
 * (PROC_UNAVAIL). */
struct rpc_proc {
    const char *name;
    xdrproc_t xdr_args;
    size_t args_size;
    xdrproc_t xdr_res;
    size_t res_size;
    void (*handler)(struct rpc_ctx *c, void *args, void *res);
    unsigned flags;
};

struct rpc_program {
    const char *name;
    uint32_t prog, vers;
    const struct rpc_proc *procs;
    size_t nprocs;
};

extern const struct rpc_program nfs3_program;
extern const struct rpc_program mount3_program;
extern const struct rpc_program nlm4_program;

/* XDR for "no data" with the xdrproc_t shape (libtirpc's xdr_void has none). */
bool_t nfsd_xdr_void(XDR *x, void *p);

/* The rpc_server handler: decode, check, dispatch, encode (ctx = struct nfsd). */
void nfsd_handle_call(void *ctx, const struct rpc_call_in *call,
                      struct rpc_reply_out *reply);

/* Squash cred per opts (root_squash / all_squash / anon ids). */
void nfsd_squash(const struct export_opts *opts, const struct nfs_cred *in,
                 struct nfs_cred *out);

/* Current exports table, referenced; drop with exports_unref. */
struct exports *nfsd_exports_get(struct nfsd *srv);

/* Replace the exports table (takes over the caller's reference). */
void nfsd_exports_set(struct nfsd *srv, struct exports *ex);

/* True when the peer's source port is privileged (< 1024). */
bool nfsd_peer_privileged(const struct sockaddr *peer);

/* Format the peer's address (no port) into buf. */
void nfsd_peer_str(const struct sockaddr *peer, char *buf, size_t len);

/* Walk path ("/run/dir", "." components skipped) from the namespace root
 * to a directory.  Errors: EINVAL (a ".." component), ENOENT, ENOTDIR,
 * ENAMETOOLONG, and vfs errors (ESTALE, EIO). */
int nfsd_resolve_path(vfs *v, const char *path, struct vfs_id *out);

/* True when id lies inside export e (doc/design.md, "Export isolation"):
 * exports of "/" hold everything; a run or namespace export holds the ids
 * of its runs; an export inside a run holds its run's non-directories and
 * the directories below its root.  A false answer is NFS3ERR_STALE. */
bool nfsd_export_holds(struct nfsd *srv, const struct export *e, const struct vfs_id *id);

/* The ".." of directory dir for a client of export e: its parent, except
 * that the export's root is its own parent (as in knfsd).  Errors: as
 * vfs_parent, and nfsd_resolve_path's for the export root. */
int nfsd_export_parent(struct nfsd *srv, const struct export *e, const struct vfs_id *dir,
                       struct vfs_id *out);

/* Canonical spelling of an absolute path into out (cap bytes): "//" and
 * "." components dropped, no trailing '/'.  Errors: EINVAL (relative, or a
 * ".." component), ENAMETOOLONG. */
int nfsd_canonical_path(const char *in, char *out, size_t cap);

/* Decode a call's file handle (len bytes at fh) into *id and *exp, the
 * export of the call's table it names, which must hold id.  With want
 * set, the handle must name that export.  Errors: EBADMSG (malformed),
 * ESTALE (MAC, unknown export, id outside it), EXDEV (not want). */
int nfsd_handle_take(struct rpc_ctx *c, const void *fh, size_t len,
                     const struct export *want, const struct export **exp,
                     struct vfs_id *id);

/* Apply the export options for c's peer (c->exp set): c->opts, and the
 * caller's credentials squashed by them.  Errors: EACCES (the export does
 * not admit the peer, or wants a privileged port it did not use). */
int nfsd_handle_admit(struct rpc_ctx *c);

/* Forget all MOUNT bookkeeping (shutdown). */
void nfsd_mounts_clear(struct nfsd *srv);

#endif
