/* tree.c: lists a served tree with READDIRPLUS and resolves paths with LOOKUP, asynchronously. */
#include "bench/nfsload/tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

long tree_add(struct tree *t, long parent, const char *name,
              const struct nfs_handle *fh, uint32_t type, uint64_t size)
{
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        struct tree_entry *p = realloc(t->e, cap * sizeof *p);
        if (!p)
            return -1;
        t->e = p;
        t->cap = cap;
    }
    struct tree_entry *e = &t->e[t->count];
    memset(e, 0, sizeof *e);
    e->parent = parent;
    if (name && !(e->name = strdup(name)))
        return -1;
    if (fh)
        e->fh = *fh;
    e->type = type;
    e->size = size;
    return (long)t->count++;
}

void tree_path(const struct tree *t, long i, char *buf, size_t len)
{
    /* walk up to the start, then write the names back to front */
    size_t pos = len - 1;
    buf[pos] = '\0';
    for (; i > 0 && t->e[i].name; i = t->e[i].parent) {
        size_t n = strlen(t->e[i].name);
        if (n + 1 > pos)
            break;
        pos -= n;
        memcpy(buf + pos, t->e[i].name, n);
        buf[--pos] = '/';
    }
    memmove(buf, buf + pos, len - pos);
    if (!buf[0] && len > 1)
        strcpy(buf, "/");
}

void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->e[i].name);
    free(t->e);
    memset(t, 0, sizeof *t);
}

int nfs3_errno(int status)
{
    switch (status) {
    case NFS3_OK: return 0;
    case NFS3ERR_PERM: return EPERM;
    case NFS3ERR_NOENT: return ENOENT;
    case NFS3ERR_ACCES: return EACCES;
    case NFS3ERR_NOTDIR: return ENOTDIR;
    case NFS3ERR_ISDIR: return EISDIR;
    case NFS3ERR_STALE: return ESTALE;
    case NFS3ERR_NAMETOOLONG: return ENAMETOOLONG;
    case NFS3ERR_JUKEBOX: return EAGAIN;
    default: return EIO;
    }
}

/* ---- listing ---------------------------------------------------------- */

struct walker {
    struct conn_pool *pool;
    struct tree *tree;
    const struct list_opts *opts;
    struct load_stats *st;
    long *queue;                /* directories waiting to be listed */
    size_t qhead, qtail, qcap;
    int active;                 /* listings in progress */
    int err;
};

struct listing {
    struct walker *w;
    long dir;
    uint64_t cookie;
    cookieverf3 verf;
    uint64_t t0;
};

static int walker_push(struct walker *w, long dir)
{
    if (w->qtail == w->qcap) {
        size_t cap = w->qcap ? w->qcap * 2 : 256;
        long *q = realloc(w->queue, cap * sizeof *q);
        if (!q)
            return ENOMEM;
        w->queue = q;
        w->qcap = cap;
    }
    w->queue[w->qtail++] = dir;
    return 0;
}

static void listing_reply(struct rpc_context *rpc, int status, void *data,
                          void *private_data);

static int listing_send(struct listing *l)
{
    struct walker *w = l->w;
    READDIRPLUS3args args;
    memset(&args, 0, sizeof args);
    args.dir = handle_wire(&w->tree->e[l->dir].fh);
    args.cookie = l->cookie;
    memcpy(args.cookieverf, l->verf, sizeof args.cookieverf);
    args.dircount = w->opts->dircount;
    args.maxcount = w->opts->maxcount;
    l->t0 = now_ns();
    if (rpc_nfs3_readdirplus_async(conn_pick(w->pool), listing_reply, &args,
                                   l)) {
        conn_note_error(w->pool, "READDIRPLUS could not be sent");
        return EIO;
    }
    return 0;
}

/* Start listings from the queue until depth are in progress. */
static void walker_pump(struct walker *w)
{
    while (!w->err && w->active < w->opts->depth && w->qhead < w->qtail) {
        struct listing *l = calloc(1, sizeof *l);
        if (!l) {
            w->err = ENOMEM;
            return;
        }
        l->w = w;
        l->dir = w->queue[w->qhead++];
        int rc = listing_send(l);
        if (rc) {
            free(l);
            w->err = rc;
            return;
        }
        w->active++;
    }
}

static int listing_take_entries(struct walker *w, struct listing *l,
                                READDIRPLUS3resok *ok)
{
    for (const entryplus3 *next = ok->reply.entries; next;) {
        /* libnfs 4 allocates list entries only 4-byte aligned: copy each
         * out before touching its 8-byte fields */
        entryplus3 copy;
        memcpy(&copy, (const void *)next, sizeof copy);
        const entryplus3 *e = &copy;
        next = copy.nextentry;
        l->cookie = e->cookie;
        if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
            continue;
        w->st->entries++;
        uint32_t type = 0;
        uint64_t size = 0;
        if (e->name_attributes.attributes_follow) {
            type = e->name_attributes.post_op_attr_u.attributes.type;
            size = e->name_attributes.post_op_attr_u.attributes.size;
        }
        int descend = w->opts->recursive && type == NF3DIR;
        if (!descend && !w->opts->keep)
            continue;       /* a walk keeps only what it descends into */
        struct nfs_handle fh = { 0 };
        if (e->name_handle.handle_follows &&
            handle_copy(&fh, &e->name_handle.post_op_fh3_u.handle)) {
            conn_note_error(w->pool, "READDIRPLUS: oversized handle");
            return EIO;
        }
        if (descend && !fh.len) {
            /* a server may omit handles; descending would then need a
             * LOOKUP, which would change what this workload measures */
            conn_note_error(w->pool, "READDIRPLUS gave no handle for %s",
                            e->name);
            return EIO;
        }
        long idx = tree_add(w->tree, l->dir, e->name, &fh, type, size);
        if (idx < 0)
            return ENOMEM;
        if (descend && walker_push(w, idx))
            return ENOMEM;
    }
    return 0;
}

static void listing_reply(struct rpc_context *rpc, int status, void *data,
                          void *private_data)
{
    struct listing *l = private_data;
    struct walker *w = l->w;
    uint64_t t1 = now_ns();
    int rc = 0;
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(w->pool, "READDIRPLUS: %s",
                        status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        rc = EIO;
    } else {
        READDIRPLUS3res *res = data;
        w->st->ops++;
        stats_latency(w->st, l->t0, t1);
        if (res->status != NFS3_OK) {
            conn_note_error(w->pool, "READDIRPLUS: NFS status %d",
                            (int)res->status);
            rc = nfs3_errno(res->status);
        } else {
            READDIRPLUS3resok *ok = &res->READDIRPLUS3res_u.resok;
            rc = listing_take_entries(w, l, ok);
            if (!rc && !ok->reply.eof) {
                memcpy(l->verf, ok->cookieverf, sizeof l->verf);
                rc = listing_send(l);
                if (!rc)
                    return; /* the listing goes on */
            }
        }
    }
    (void)rpc;
    if (rc) {
        w->st->errors++;
        if (!w->err)
            w->err = rc;
    }
    free(l);
    w->active--;
    walker_pump(w);
}

static int walker_done(void *arg)
{
    struct walker *w = arg;
    return w->active == 0 && (w->err || w->qhead == w->qtail);
}

int tree_list(struct conn_pool *pool, struct tree *tree,
              const struct list_opts *opts, struct load_stats *st,
              uint64_t deadline_ns)
{
    struct walker w = { .pool = pool, .tree = tree, .opts = opts, .st = st };
    for (int i = 0; i < (opts->repeat > 0 ? opts->repeat : 1); i++)
        if (walker_push(&w, 0)) {
            free(w.queue);
            return ENOMEM;
        }
    walker_pump(&w);
    int rc = conn_run(pool, walker_done, &w, deadline_ns);
    free(w.queue);
    /* on a timeout, listings still in flight keep their memory: the
     * caller ends the program anyway */
    return rc ? rc : w.err;
}

/* ---- path resolution -------------------------------------------------- */

static void resolve_reply(struct rpc_context *rpc, int status, void *data,
                          void *private_data);

static void resolve_finish(struct resolve_op *op, int err)
{
    op->err = err;
    op->done = 1;
    if (op->on_done)
        op->on_done(op, op->arg);
}

/* Send the LOOKUP of the next component, or finish when none is left. */
static void resolve_step(struct resolve_op *op)
{
    char *name;
    while ((name = strsep(&op->next, "/")) && !*name)
        ; /* skip empty components ("//", leading "/") */
    if (!name) {
        resolve_finish(op, 0);
        return;
    }
    LOOKUP3args args;
    memset(&args, 0, sizeof args);
    args.what.dir = handle_wire(&op->result.fh);
    args.what.name = name;
    op->result.name = name;
    if (rpc_nfs3_lookup_async(op->rpc, resolve_reply, &args, op)) {
        conn_note_error(op->pool, "LOOKUP could not be sent");
        resolve_finish(op, EIO);
    }
}

static void resolve_reply(struct rpc_context *rpc, int status, void *data,
                          void *private_data)
{
    struct resolve_op *op = private_data;
    (void)rpc;
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(op->pool, "LOOKUP %s: %s", op->result.name,
                        status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        if (op->st)
            op->st->errors++;
        resolve_finish(op, EIO);
        return;
    }
    LOOKUP3res *res = data;
    if (op->st)
        op->st->ops++;
    if (res->status != NFS3_OK) {
        conn_note_error(op->pool, "LOOKUP %s: NFS status %d", op->result.name,
                        (int)res->status);
        if (op->st)
            op->st->errors++;
        resolve_finish(op, nfs3_errno(res->status));
        return;
    }
    LOOKUP3resok *ok = &res->LOOKUP3res_u.resok;
    if (handle_copy(&op->result.fh, &ok->object)) {
        resolve_finish(op, EIO);
        return;
    }
    op->result.type = 0;
    op->result.size = 0;
    if (ok->obj_attributes.attributes_follow) {
        op->result.type = ok->obj_attributes.post_op_attr_u.attributes.type;
        op->result.size = ok->obj_attributes.post_op_attr_u.attributes.size;
    }
    resolve_step(op);
}

int resolve_start(struct resolve_op *op, struct conn_pool *pool,
                  struct rpc_context *rpc, const char *path,
                  struct load_stats *st,
                  void (*on_done)(struct resolve_op *op, void *arg), void *arg)
{
    memset(op, 0, sizeof *op);
    op->pool = pool;
    op->rpc = rpc;
    op->st = st;
    op->on_done = on_done;
    op->arg = arg;
    op->result.parent = -1;
    op->result.fh = pool->root;
    op->result.type = NF3DIR;
    if (!(op->path = strdup(path)))
        return ENOMEM;
    op->next = op->path;
    resolve_step(op);
    return 0;
}

void resolve_free(struct resolve_op *op)
{
    free(op->path);
    op->path = op->next = NULL;
    op->result.name = NULL;
}

static int resolve_done(void *arg)
{
    return ((struct resolve_op *)arg)->done;
}

int tree_resolve(struct conn_pool *pool, const char *path,
                 struct tree_entry *out, struct load_stats *st,
                 uint64_t deadline_ns)
{
    struct resolve_op op;
    int rc = resolve_start(&op, pool, conn_pick(pool), path, st, NULL, NULL);
    if (rc)
        return rc;
    rc = conn_run(pool, resolve_done, &op, deadline_ns);
    if (!rc)
        rc = op.err;
    *out = op.result;
    out->name = NULL;
    if (rc == ETIMEDOUT)
        return rc; /* a LOOKUP may still point at op: leave its path */
    resolve_free(&op);
    return rc;
}
