/* tree.h: what nfsload knows of the served tree: a table of entries found
 * by listing it with READDIRPLUS, and path resolution with LOOKUP.  Both
 * run asynchronously on a conn_pool, many requests in flight. */
#ifndef TARNFS_BENCH_TREE_H
#define TARNFS_BENCH_TREE_H

#include "bench/nfsload/conn.h"
#include "bench/nfsload/stats.h"

struct tree_entry {
    long parent;                /* index of the parent, -1 for the start */
    char *name;                 /* NULL for the start entry */
    struct nfs_handle fh;
    uint32_t type;              /* NF3REG, NF3DIR, ... (0 if unknown) */
    uint64_t size;
};

struct tree {
    struct tree_entry *e;
    size_t count, cap;
};

/* Append an entry; returns its index, or -1 when out of memory. */
long tree_add(struct tree *t, long parent, const char *name,
              const struct nfs_handle *fh, uint32_t type, uint64_t size);

/* Write the path of entry i relative to the start into buf. */
void tree_path(const struct tree *t, long i, char *buf, size_t len);

/* Free every entry. */
void tree_free(struct tree *t);

/* Listing parameters shared by walk and readdirplus. */
struct list_opts {
    uint32_t maxcount;          /* READDIRPLUS maxcount (reply bytes) */
    uint32_t dircount;          /* READDIRPLUS dircount (name bytes) */
    int depth;                  /* directories listed at once */
    int recursive;              /* descend into subdirectories */
    int repeat;                 /* list the start directory this many times
                                   (concurrently, up to depth); 1 = once */
    int keep;                   /* add every entry found to the tree (else
                                   only the directories descended into) */
};

/* List the directory tree->e[0] (already added by the caller), appending
 * what it finds (recursively if asked) to tree.  Counts requests, entries
 * and latencies into st.  Returns 0, EIO (a request failed; pool->error),
 * ETIMEDOUT or ENOMEM. */
int tree_list(struct conn_pool *pool, struct tree *tree,
              const struct list_opts *opts, struct load_stats *st,
              uint64_t deadline_ns);

/* One path resolution in flight (see resolve_start). */
struct resolve_op {
    struct conn_pool *pool;
    struct rpc_context *rpc;
    char *path;                 /* our copy, cut up as components go */
    char *next;                 /* the components not looked up yet */
    struct tree_entry result;   /* the last component found so far */
    struct load_stats *st;      /* may be NULL */
    int done, err;
    void (*on_done)(struct resolve_op *op, void *arg);
    void *arg;
};

/* Start resolving path ("/a/b", relative to the export root) on rpc, one
 * LOOKUP per component; on_done (may be NULL) runs when op->done is set,
 * with op->err 0 or an errno (ENOENT..., EIO).  Returns 0 or ENOMEM/EIO
 * when nothing could be sent (on_done is not called then). */
int resolve_start(struct resolve_op *op, struct conn_pool *pool,
                  struct rpc_context *rpc, const char *path,
                  struct load_stats *st,
                  void (*on_done)(struct resolve_op *op, void *arg), void *arg);

/* Free what op holds (call once it is done). */
void resolve_free(struct resolve_op *op);

/* Resolve path ("/a/b", relative to the export root) with one LOOKUP per
 * component; fills *out (type, size, handle).  Counts into st if not NULL.
 * Returns 0, ENOENT (or another errno from the NFS status), EIO, ETIMEDOUT. */
int tree_resolve(struct conn_pool *pool, const char *path,
                 struct tree_entry *out, struct load_stats *st,
                 uint64_t deadline_ns);

/* An errno for an NFSv3 status (EIO for the ones without one). */
int nfs3_errno(int status);

#endif
