/* rpc_dispatch.c: turns one RPC call record into one reply: call header and
 * credentials, program/version/procedure lookup, argument decoding, the shared
 * NFS checks (handle, export ACL, squash, read-only), and reply encoding. */
#include "nfsd/nfsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nfsd/nfs3_prot.h"
#include "nfsd/nfs3_status.h"
#include "util/log.h"

/* ---- arena ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void arena_free(struct arena *a)
{
    while (a->head) {
        struct arena_chunk *c = a->head;
        a->head = c->next;
        free(c);
    }
}

bool_t nfsd_xdr_void(XDR *x, void *p)
{
    return TRUE;
}

/* ---- shared state ---- */

struct exports *nfsd_exports_get(struct nfsd *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct exports *ex = exports_ref(srv->exports);
    pthread_mutex_unlock(&srv->lock);
    return ex;
}

void nfsd_exports_set(struct nfsd *srv, struct exports *ex)
{
    pthread_mutex_lock(&srv->lock);
    struct exports *old = srv->exports;
    srv->exports = ex;
    pthread_mutex_unlock(&srv->lock);
    exports_unref(old);
}

bool nfsd_peer_privileged(const struct sockaddr *peer)
{
    unsigned port = peer->sa_family == AF_INET6
        ? ntohs(((const struct sockaddr_in6 *)peer)->sin6_port)
        : ntohs(((const struct sockaddr_in *)peer)->sin_port);
    return port < 1024;
}

void nfsd_peer_str(const struct sockaddr *peer, char *buf, size_t len)
{
    const void *a;
    int fam = peer->sa_family;
    if (fam == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            fam = AF_INET;
            a = &a6->s6_addr[12];
        } else {
            a = a6;
        }
    } else {
        a = &((const struct sockaddr_in *)peer)->sin_addr;
    }
    if (!inet_ntop(fam, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

void nfsd_squash(const struct export_opts *opts, const struct nfs_cred *in,
                 struct nfs_cred *out)
{
    *out = *in;
    if (opts->all_squash) {
        out->uid = opts->anonuid;
        out->gid = opts->anongid;
        out->ngids = 0;
        return;
    }
    if (opts->root_squash) {
        if (out->uid == 0)
            out->uid = opts->anonuid;
        if (out->gid == 0)
            out->gid = opts->anongid;
        for (uint32_t i = 0; i < out->ngids; i++)
            if (out->gids[i] == 0)
                out->gids[i] = opts->anongid;
    }
}

/* ---- export isolation ---- */

static bool id_equal(const struct vfs_id *a, const struct vfs_id *b)
{
    return a->len == b->len && !memcmp(a->b, b->b, a->len);
}

/* Directories walked up at most when checking a handle against an export
 * inside a run (deeper trees are refused: STALE). */
#define EXPORT_WALK_MAX 4096

bool nfsd_export_holds(struct nfsd *srv, const struct export *e, const struct vfs_id *id)
{
    const char *p = e->path + 1;            /* "" for "/" */
    size_t pl = strlen(p);
    if (pl == 0)
        return true;
    char where[VFS_PATH_MAX];
    bool in_run;
    if (vfs_id_where(srv->vfs, id, where, sizeof where, &in_run))
        return false;
    size_t wl = strlen(where);
    if (wl >= pl && !strncmp(where, p, pl) && (where[pl] == 0 || where[pl] == '/'))
        return true;                        /* in the exported run or below it */
    if (!in_run || pl <= wl || strncmp(p, where, wl) || p[wl] != '/')
        return false;                       /* another run or namespace dir */
    /* The export is a directory inside id's run: a directory must have the
     * export's root among its ancestors.  Non-directories have no parent
     * link to check; they were reached through a checked directory. */
    struct vfs_attr a;
    if (vfs_getattr(srv->vfs, id, &a))
        return true;                        /* the handler reports the error */
    if (a.type != VFS_DIR)
        return true;
    struct vfs_id root, cur = *id;
    if (nfsd_resolve_path(srv->vfs, e->path, &root))
        return false;
    for (int i = 0; i < EXPORT_WALK_MAX; i++) {
        if (id_equal(&cur, &root))
            return true;
        struct vfs_id up;
        if (vfs_parent(srv->vfs, &cur, &up) || id_equal(&up, &cur) ||
            vfs_id_where(srv->vfs, &up, where, sizeof where, &in_run) || !in_run)
            return false;
        cur = up;
    }
    return false;
}

int nfsd_export_parent(struct nfsd *srv, const struct export *e, const struct vfs_id *dir,
                       struct vfs_id *out)
{
    if (strcmp(e->path, "/")) {
        struct vfs_id root;
        int err = nfsd_resolve_path(srv->vfs, e->path, &root);
        if (err)
            return err == ENOENT ? ESTALE : err;
        if (id_equal(dir, &root)) {
            *out = *dir;
            return 0;
        }
    }
    return vfs_parent(srv->vfs, dir, out);
}

/* ---- replies ---- */

/* An accepted reply's header (xid, direction, reply_stat, null verifier,
 * accept_stat) is 24 bytes; this leaves room to spare. */
#define REPLY_HEADER_MAX 64

/* Encode msg into a buffer of RPC_REPLY_HEADROOM + size bytes; false when
 * it does not fit or memory runs out. */
static bool encode_reply_into(struct rpc_msg *msg, unsigned long size,
                              struct rpc_reply_out *out)
{
    uint8_t *buf = malloc(RPC_REPLY_HEADROOM + size);
    if (!buf)
        return false;
    XDR x;
    xdrmem_create(&x, (char *)buf + RPC_REPLY_HEADROOM, (u_int)size, XDR_ENCODE);
    bool ok = xdr_replymsg(&x, msg);
    if (ok) {
        out->buf = buf;
        out->len = xdr_getpos(&x);
    } else {
        free(buf);
    }
    xdr_destroy(&x);
    return ok;
}

/* Encode msg (a complete reply) into a fresh buffer.  With a size hint
 * (an upper bound of the results) it is encoded once; without one, or if
 * the hint was short, its exact size is measured first. */
static void encode_reply(struct rpc_msg *msg, size_t size_hint, struct rpc_reply_out *out)
{
    if (size_hint && size_hint <= UINT_MAX - REPLY_HEADER_MAX &&
        encode_reply_into(msg, size_hint + REPLY_HEADER_MAX, out))
        return;
    unsigned long size = xdr_sizeof((xdrproc_t)xdr_replymsg, msg);
    uint8_t *buf = malloc(RPC_REPLY_HEADROOM + size);
    if (!buf) {
        log_error("rpc: out of memory for a %lu-byte reply", size);
        return;
    }
    XDR x;
    xdrmem_create(&x, (char *)buf + RPC_REPLY_HEADROOM, (u_int)size, XDR_ENCODE);
    if (!xdr_replymsg(&x, msg)) {
        log_error("rpc: could not encode a %lu-byte reply (stat %d)", size,
                  (int)msg->acpted_rply.ar_stat);
        free(buf);
        xdr_destroy(&x);
        return;
    }
    out->buf = buf;
    out->len = xdr_getpos(&x);
    xdr_destroy(&x);
}

/* A reply to an accepted call; size_hint as for encode_reply. */
static void reply_accepted_sized(uint32_t xid, enum accept_stat stat, xdrproc_t res_proc,
                                 void *res, uint32_t low, uint32_t high,
                                 size_t size_hint, struct rpc_reply_out *out)
{
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.rm_xid = xid;
    m.rm_direction = REPLY;
    m.rm_reply.rp_stat = MSG_ACCEPTED;
    m.acpted_rply.ar_verf = _null_auth;
    m.acpted_rply.ar_stat = stat;
    if (stat == SUCCESS) {
        m.acpted_rply.ar_results.where = res;
        m.acpted_rply.ar_results.proc = res_proc ? res_proc : (xdrproc_t)nfsd_xdr_void;
    } else if (stat == PROG_MISMATCH) {
        m.acpted_rply.ar_vers.low = low;
        m.acpted_rply.ar_vers.high = high;
    }
    encode_reply(&m, size_hint, out);
}

static void reply_accepted(uint32_t xid, enum accept_stat stat, xdrproc_t res_proc,
                           void *res, uint32_t low, uint32_t high,
                           struct rpc_reply_out *out)
{
    reply_accepted_sized(xid, stat, res_proc, res, low, high, 0, out);
}

static void reply_denied(uint32_t xid, enum reject_stat why, enum auth_stat auth,
                         struct rpc_reply_out *out)
{
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.rm_xid = xid;
    m.rm_direction = REPLY;
    m.rm_reply.rp_stat = MSG_DENIED;
    m.rjcted_rply.rj_stat = why;
    if (why == RPC_MISMATCH) {
        m.rjcted_rply.rj_vers.low = 2;
        m.rjcted_rply.rj_vers.high = 2;
    } else {
        m.rjcted_rply.rj_why = auth;
    }
    encode_reply(&m, 0, out);
}

/* ---- credentials ---- */

/* Parse an AUTH_SYS body (RFC 5531 appendix A) without allocating. */
static bool parse_auth_sys(const uint8_t *p, size_t n, struct nfs_cred *cred)
{
    XDR x;
    uint32_t stamp, namelen, ngids;
    bool ok = false;
    xdrmem_create(&x, (char *)p, (u_int)n, XDR_DECODE);
    if (!xdr_u_int(&x, &stamp) || !xdr_u_int(&x, &namelen) || namelen > 255)
        goto out;
    char name[256];
    if (!xdr_opaque(&x, name, namelen))
        goto out;
    if (!xdr_u_int(&x, &cred->uid) || !xdr_u_int(&x, &cred->gid) ||
        !xdr_u_int(&x, &ngids) || ngids > NFSD_MAX_GIDS)
        goto out;
    for (uint32_t i = 0; i < ngids; i++)
        if (!xdr_u_int(&x, &cred->gids[i]))
            goto out;
    cred->ngids = ngids;
    ok = true;
out:
    xdr_destroy(&x);
    return ok;
}

/* ---- the NFS shared checks ---- */

/* Fill an NFS result with a bare error status: every NFSv3 result union
 * starts with its nfsstat3 and its failure arm holds only optional attrs. */
static void nfs_fail(void *res, nfsstat3 st)
{
    *(nfsstat3 *)res = st;
}

int nfsd_handle_take(struct rpc_ctx *c, const void *fh, size_t len,
                     const struct export *want, const struct export **exp,
                     struct vfs_id *id)
{
    uint8_t exp_id;
    int err = fh_decode(&c->srv->key, fh, len, &exp_id, id);
    if (err)
        return err == EBADMSG ? EBADMSG : ESTALE;
    if (want && exp_id != want->id)
        return EXDEV;
    *exp = want ? want : exports_by_id(c->exports, exp_id);
    if (!*exp)
        return ESTALE;              /* the export was removed by a reload */
    if (!nfsd_export_holds(c->srv, *exp, id))
        return ESTALE;              /* names a node outside its export */
    return 0;
}

int nfsd_handle_admit(struct rpc_ctx *c)
{
    c->opts = export_match(c->exp, c->peer);
    if (!c->opts || (c->opts->secure && !nfsd_peer_privileged(c->peer)))
        return EACCES;
    nfsd_squash(c->opts, &c->raw_cred, &c->cred);
    return 0;
}

static nfsstat3 nfs_check_handle(struct rpc_ctx *c, const nfs_fh3 *fh, unsigned flags)
{
    int err = nfsd_handle_take(c, fh->data.data_val, fh->data.data_len, NULL,
                               &c->exp, &c->id);
    if (err)
        return err == EBADMSG ? NFS3ERR_BADHANDLE : NFS3ERR_STALE;
    if (nfsd_handle_admit(c))
        return NFS3ERR_ACCES;
    if (c->flavor != AUTH_SYS) {    /* AUTH_NONE: this export's anonymous ids */
        c->cred.uid = c->opts->anonuid;
        c->cred.gid = c->opts->anongid;
        c->cred.ngids = 0;
    }
    if ((flags & PROC_MODIFIES) && (!c->opts->rw || c->srv->vfs_read_only))
        return NFS3ERR_ROFS;
    return NFS3_OK;
}

static const struct rpc_program *const programs[] = { &nfs3_program, &mount3_program,
                                                      &nlm4_program };

/* Argument bytes the DRC hashes: enough for every argument but WRITE's
 * data, whose length is hashed instead of all of it (a 1 MiB WRITE would
 * otherwise cost ~0.5 ms of SipHash; knfsd sums 256 bytes). */
#define DRC_HASHED_ARGS 512

/* The DRC key of a call whose arguments start at byte args_at: the
 * arguments hashed (keyed) with the caller's ids, not the credential bytes,
 * whose AUTH_SYS stamp a client may renew when it re-encodes a retry. */
static void drc_key_make(struct nfsd *srv, struct drc_key *k, uint32_t xid,
                         const struct rpc_msg *msg, const struct rpc_call_in *call,
                         size_t args_at, const struct nfs_cred *cred)
{
    memset(k, 0, sizeof *k);
    k->xid = xid;
    k->prog = (uint32_t)msg->rm_call.cb_prog;
    k->vers = (uint32_t)msg->rm_call.cb_vers;
    k->proc = (uint32_t)msg->rm_call.cb_proc;
    if (call->peer->sa_family == AF_INET6) {
        memcpy(k->addr, &((const struct sockaddr_in6 *)call->peer)->sin6_addr, 16);
    } else if (call->peer->sa_family == AF_INET) {
        k->addr[10] = k->addr[11] = 0xff;
        memcpy(k->addr + 12, &((const struct sockaddr_in *)call->peer)->sin_addr, 4);
    }
    uint8_t ids[20];
    uint32_t f = (uint32_t)msg->rm_call.cb_cred.oa_flavor;
    uint64_t total = call->len - args_at;
    size_t hashed = total > DRC_HASHED_ARGS ? DRC_HASHED_ARGS : (size_t)total;
    memcpy(ids, &cred->uid, 4);
    memcpy(ids + 4, &cred->gid, 4);
    memcpy(ids + 8, &f, 4);
    memcpy(ids + 12, &total, 8);
    k->body = fh_siphash24(srv->key.k, call->data + args_at, hashed) ^
              (fh_siphash24(srv->key.k + 16, ids, sizeof ids) << 1);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count an answered call in the metrics: its status, file bytes moved and
 * time since t0 (or since it first parked). */
static void count_call(struct nfsd *srv, const struct rpc_program *prog, uint32_t procnum,
                       const void *res, const struct rpc_call_in *call, uint64_t t0)
{
    uint64_t now = mono_ns();
    if (call->parked_ms && (uint64_t)call->parked_ms * 1000000u < t0)
        t0 = (uint64_t)call->parked_ms * 1000000u;
    int status = -1;
    uint64_t rd = 0, wr = 0;
    if (prog == &nfs3_program) {
        if (procnum != 0)
            status = (int)*(const nfsstat3 *)res;
        if (status == NFS3_OK && procnum == NFSPROC3_READ)
            rd = ((const READ3res *)res)->READ3res_u.resok.count;
        else if (status == NFS3_OK && procnum == NFSPROC3_WRITE)
            wr = ((const WRITE3res *)res)->WRITE3res_u.resok.count;
    } else if (procnum == 1) {                  /* MNT: mountres3 starts with its status */
        status = *(const int *)res;
    }
    metrics_call(srv->metrics, prog == &nfs3_program ? METRICS_NFS : METRICS_MOUNT, procnum,
                 status, now > t0 ? now - t0 : 0, rd, wr);
}

void nfsd_handle_call(void *ctx, const struct rpc_call_in *call, struct rpc_reply_out *out)
{
    struct nfsd *srv = ctx;
    uint64_t t0 = srv->metrics ? mono_ns() : 0;
    struct rpc_msg msg;
    char credbuf[MAX_AUTH_BYTES], verfbuf[MAX_AUTH_BYTES];
    memset(&msg, 0, sizeof msg);
    msg.rm_call.cb_cred.oa_base = credbuf;
    msg.rm_call.cb_verf.oa_base = verfbuf;

    if (call->len < 12)
        return;     /* not even an xid, direction and version: nothing to answer */
    uint32_t xid, dir, rpcvers;
    memcpy(&xid, call->data, 4);
    memcpy(&dir, call->data + 4, 4);
    memcpy(&rpcvers, call->data + 8, 4);
    xid = ntohl(xid);
    if (ntohl(dir) != CALL)
        return;
    if (ntohl(rpcvers) != 2) {
        reply_denied(xid, RPC_MISMATCH, 0, out);
        return;
    }

    XDR x;
    xdrmem_create(&x, (char *)call->data, (u_int)call->len, XDR_DECODE);
    if (!xdr_callmsg(&x, &msg)) {
        xdr_destroy(&x);
        reply_accepted(xid, GARBAGE_ARGS, NULL, NULL, 0, 0, out);
        return;
    }

    const struct rpc_program *prog = NULL, *known = NULL;
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        if (programs[i]->prog != msg.rm_call.cb_prog)
            continue;
        known = programs[i];
        if (programs[i]->vers == msg.rm_call.cb_vers)
            prog = programs[i];
    }
    if (!prog) {
        xdr_destroy(&x);
        if (known)
            reply_accepted(xid, PROG_MISMATCH, NULL, NULL, known->vers, known->vers, out);
        else
            reply_accepted(xid, PROG_UNAVAIL, NULL, NULL, 0, 0, out);
        return;
    }
    if (msg.rm_call.cb_proc >= prog->nprocs || !prog->procs[msg.rm_call.cb_proc].handler) {
        xdr_destroy(&x);
        reply_accepted(xid, PROC_UNAVAIL, NULL, NULL, 0, 0, out);
        return;
    }
    const struct rpc_proc *proc = &prog->procs[msg.rm_call.cb_proc];

    struct rpc_ctx c;
    memset(&c, 0, sizeof c);
    c.srv = srv;
    c.peer = call->peer;
    c.is_tcp = call->is_tcp;
    c.max_reply = call->max_reply;
    c.flavor = msg.rm_call.cb_cred.oa_flavor;
    if (c.flavor == AUTH_SYS) {
        if (!parse_auth_sys((const uint8_t *)credbuf, msg.rm_call.cb_cred.oa_length,
                            &c.raw_cred)) {
            xdr_destroy(&x);
            reply_denied(xid, AUTH_ERROR, AUTH_BADCRED, out);
            return;
        }
    } else if (c.flavor == AUTH_NONE || msg.rm_call.cb_proc == 0) {
        /* AUTH_NONE is squashed to anon below (all_squash semantics). */
        c.raw_cred.uid = c.raw_cred.gid = 65534;
    } else {
        xdr_destroy(&x);
        reply_denied(xid, AUTH_ERROR, AUTH_BADCRED, out);
        return;
    }

    size_t args_at = xdr_getpos(&x);
    void *args = calloc(1, proc->args_size ? proc->args_size : 1);
    void *res = calloc(1, proc->res_size ? proc->res_size : 1);
    if (!args || !res) {
        free(args);
        free(res);
        xdr_destroy(&x);
        reply_accepted(xid, SYSTEM_ERR, NULL, NULL, 0, 0, out);
        return;
    }
    if (!proc->xdr_args(&x, args)) {
        xdr_free(proc->xdr_args, args);
        free(args);
        free(res);
        xdr_destroy(&x);
        log_debug("rpc: %s %s: garbage arguments", prog->name, proc->name);
        reply_accepted(xid, GARBAGE_ARGS, NULL, NULL, 0, 0, out);
        return;
    }
    xdr_destroy(&x);

    /* A retransmitted non-idempotent call gets its first reply. */
    struct drc_key dk;
    bool use_drc = prog == &nfs3_program && (proc->flags & PROC_DRC) && srv->drc.on;
    if (use_drc) {
        drc_key_make(srv, &dk, xid, &msg, call, args_at, &c.raw_cred);
        enum drc_state ds = drc_begin(&srv->drc, &dk, out);
        if (ds != DRC_MISS) {
            log_debug("rpc: %s %s xid %u: a retransmission, %s", prog->name, proc->name,
                      xid, ds == DRC_HIT ? "replayed" : "still running; dropped");
            xdr_free(proc->xdr_args, args);
            free(args);
            free(res);
            return;
        }
    }

    c.exports = nfsd_exports_get(srv);
    if (c.flavor == AUTH_NONE) {
        static const struct export_opts anon = { .all_squash = true,
                                                 .anonuid = 65534, .anongid = 65534 };
        nfsd_squash(&anon, &c.raw_cred, &c.raw_cred);
    }
    c.cred = c.raw_cred;
    /* Parking (doc/design.md, "The parked-request path"): an NFS call that
     * needs data being fetched gets EINPROGRESS from vfs at the wait point
     * and is run again from scratch when the data is there.  Reads park
     * anywhere (they have no side effects); a change parks only in
     * vfs_prepare, before it does anything. */
    struct vfs_park park = {
        .resume = call->may_park ? rpc_call_resume : NULL,
        .arg = call->park_token,
        .wake_err = call->wake_err,
    };
    bool parkable = call->park_token != NULL && prog == &nfs3_program;
    if (prog == &nfs3_program && (proc->flags & PROC_NEEDS_FH)) {
        nfsstat3 st = nfs_check_handle(&c, (const nfs_fh3 *)args, proc->flags);
        if (st != NFS3_OK) {
            nfs_fail(res, st);
        } else if (call->expired) {
            nfs_fail(res, NFS3ERR_JUKEBOX);     /* parked past park_timeout */
        } else if (parkable && (proc->flags & PROC_MODIFIES)) {
            vfs_park_begin(&park);
            int perr = vfs_prepare(srv->vfs, &c.id);
            vfs_park_end();
            if (!park.parked && (perr == EIO || perr == EAGAIN || perr == ENOSPC))
                nfs_fail(res, nfs3_status_from_errno(perr));  /* the fetch failed */
            else if (!park.parked)
                proc->handler(&c, args, res);   /* other errors: the handler's */
        } else if (parkable) {
            vfs_park_begin(&park);
            proc->handler(&c, args, res);
            vfs_park_end();
        } else {
            proc->handler(&c, args, res);
        }
    } else {
        proc->handler(&c, args, res);
    }
    if (park.parked) {
        /* Whatever the handler made of EINPROGRESS is not an answer. */
        free(c.reply_tail);
        c.reply_tail = NULL;
        if (park.resume) {
            /* The call runs again from scratch when resumed, through
             * drc_begin again: it must not find itself "still running". */
            if (use_drc)
                drc_abandon(&srv->drc, &dk);
            out->parked = true;
            xdr_free(proc->xdr_args, args);
            free(args);
            free(res);
            arena_free(&c.arena);
            exports_unref(c.exports);
            return;
        }
        /* Too many calls parked already: the fetch has started; the client
         * retries later. */
        memset(res, 0, proc->res_size ? proc->res_size : 1);
        nfs_fail(res, NFS3ERR_JUKEBOX);
    }
    reply_accepted_sized(xid, SUCCESS, c.reply_tail ? c.reply_head_proc : proc->xdr_res,
                         res, 0, 0, c.reply_size_hint, out);
    if (out->buf && c.reply_tail) {
        out->tail = c.reply_tail;
        out->tail_len = c.reply_tail_len;
    } else {
        free(c.reply_tail);
    }
    if (!out->buf) {
        log_error("rpc: %s %s: reply not encodable; answering SYSTEM_ERR", prog->name,
                  proc->name);
        reply_accepted(xid, SYSTEM_ERR, NULL, NULL, 0, 0, out);
    }
    if (srv->metrics)
        count_call(srv, prog, (uint32_t)msg.rm_call.cb_proc, res, call, t0);
    if (use_drc) {
        if (*(nfsstat3 *)res == NFS3ERR_JUKEBOX)
            drc_abandon(&srv->drc, &dk);    /* "try later" must not be replayed */
        else
            drc_done(&srv->drc, &dk, out);
    }

    xdr_free(proc->xdr_args, args);
    free(args);
    free(res);
    arena_free(&c.arena);
    exports_unref(c.exports);
}
