/* nlm4_procs.c: the NLM v4 procedures (TEST, LOCK, CANCEL, UNLOCK, their
 * _MSG forms answered by _RES callbacks, GRANTED_RES, SHARE, UNSHARE,
 * NM_LOCK, FREE_ALL and statd's reboot notice) over the lock table, with
 * the export checks and the grace period after a restart. */
#include "nfsd/nlm.h"
#include "util/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nfsd/nlm4_prot.h"
#include "nfsd/nlm_cb.h"
#include "nfsd/nlm_lock.h"
#include "util/log.h"

/* Procedure numbers (XNFS; 16 is the Linux/knfsd statd callback). */
enum {
    P_TEST_RES = 11, P_LOCK_RES = 12, P_CANCEL_RES = 13, P_UNLOCK_RES = 14,
    P_GRANTED_MSG = 10,
};

bool nlm_in_grace(const struct nfsd *srv)
{
    return srv->nlm_grace_until_ms && tclock_mono_ms() < srv->nlm_grace_until_ms;
}

/* ---- shared checks ---- */

/* The file id of an NLM file handle (the NFSv3 handle's bytes), checked as
 * an NFS handle is: MAC, export, export holds it, the export admits the
 * peer (and its port when secure), root squash applied to the caller. */
static nlm4_stats nlm_file(struct rpc_ctx *c, const nlm4_netobj *fh, struct vfs_id *id)
{
    if (nfsd_handle_take(c, fh->nlm4_netobj_val, fh->nlm4_netobj_len, NULL, &c->exp, id))
        return NLM4_STALE_FH;
    if (nfsd_handle_admit(c))
        return NLM4_FAILED;     /* the export's ACL refuses this host */
    return NLM4_GRANTED;
}

static bool caller_ok(const char *name)
{
    return name && name[0] && strlen(name) < NLM_HOST_MAX;
}

/* How a call meets the grace period after a restart. */
enum grace_rule {
    GRACE_REFUSES,      /* refused during it (TEST, CANCEL, UNLOCK, UNSHARE) */
    GRACE_RECLAIMS,     /* during it only reclaims, after it none (LOCK, SHARE) */
};

/* The checks every lock call starts with: a lock manager, a sane caller
 * name, a handle this peer may use (into *id, nlm_file), the grace period.
 * NLM4_GRANTED if the call may go on, else its status. */
static nlm4_stats admit(struct rpc_ctx *c, const char *caller, const nlm4_netobj *fh,
                        enum grace_rule rule, bool reclaim, struct vfs_id *id)
{
    if (!c->srv->nlm)
        return NLM4_DENIED_NOLOCKS;
    if (!caller_ok(caller))
        return NLM4_FAILED;
    nlm4_stats st = nlm_file(c, fh, id);
    if (st != NLM4_GRANTED)
        return st;
    bool grace = nlm_in_grace(c->srv);
    /* New locks wait for the grace period to end; reclaims come only
     * during it (after it, what was held may have been taken). */
    if (rule == GRACE_RECLAIMS ? grace != reclaim : grace)
        return NLM4_DENIED_GRACE_PERIOD;
    return NLM4_GRANTED;
}

/* The owner of l, called from c's peer (its address as text in addr). */
static struct nlm_owner owner_of(struct rpc_ctx *c, const nlm4_lock *l, char addr[NLM_ADDR_MAX])
{
    nfsd_peer_str(c->peer, addr, NLM_ADDR_MAX);
    return (struct nlm_owner){
        .host = l->caller_name, .addr = addr, .svid = l->svid,
        .oh = (const uint8_t *)l->oh.nlm4_netobj_val, .ohlen = l->oh.nlm4_netobj_len,
    };
}

static nlm4_stats stat_of(enum nlm_result r)
{
    switch (r) {
    case NLM_OK:       return NLM4_GRANTED;
    case NLM_CONFLICT: return NLM4_DENIED;
    case NLM_QUEUED:   return NLM4_BLOCKED;
    case NLM_NOLOCKS:  return NLM4_DENIED_NOLOCKS;
    case NLM_RANGE:    return NLM4_FBIG;
    }
    return NLM4_FAILED;
}

/* Cookies are echoed back: the reply points at the argument's bytes. */
static void echo_cookie(nlm4_netobj *out, const nlm4_netobj *in)
{
    *out = *in;
}

/* ---- the operations, shared by the synchronous and _MSG forms ---- */

static void do_test(struct rpc_ctx *c, const nlm4_testargs *a, nlm4_testres *r)
{
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->alock.caller_name, &a->alock.fh, GRACE_REFUSES, false,
                          &id);
    if (st != NLM4_GRANTED) {
        r->test_stat.stat = st;
        return;
    }
    struct nlm_holder *h = arena_alloc(&c->arena, sizeof *h);
    if (!h) {
        r->test_stat.stat = NLM4_DENIED_NOLOCKS;
        return;
    }
    char addr[NLM_ADDR_MAX];
    struct nlm_owner o = owner_of(c, &a->alock, addr);
    enum nlm_result res = nlm_test(c->srv->nlm, &id, &o, a->exclusive, a->alock.l_offset,
                                   a->alock.l_len, h);
    r->test_stat.stat = stat_of(res);
    if (res == NLM_CONFLICT) {
        nlm4_holder *out = &r->test_stat.nlm4_testrply_u.holder;
        out->exclusive = h->exclusive;
        out->svid = h->svid;
        out->oh.nlm4_netobj_val = (char *)h->oh;
        out->oh.nlm4_netobj_len = (u_int)h->ohlen;
        out->l_offset = h->offset;
        out->l_len = h->len;
    }
}

static void do_lock(struct rpc_ctx *c, const nlm4_lockargs *a, nlm4_res *r, bool may_block)
{
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->alock.caller_name, &a->alock.fh, GRACE_RECLAIMS,
                          a->reclaim, &id);
    if (st != NLM4_GRANTED) {
        r->stat.stat = st;
        return;
    }
    char addr[NLM_ADDR_MAX];
    struct nlm_owner o = owner_of(c, &a->alock, addr);
    struct nlm_callback cb;
    memset(&cb, 0, sizeof cb);
    memcpy(&cb.addr, c->peer, c->peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in));
    cb.tcp = c->is_tcp;
    cb.fhlen = a->alock.fh.nlm4_netobj_len;    /* nlm_file decoded it: <= FH_MAX */
    memcpy(cb.fh, a->alock.fh.nlm4_netobj_val, cb.fhlen);
    enum nlm_result res = nlm_lock(c->srv->nlm, &id, &o, a->exclusive, a->alock.l_offset,
                                   a->alock.l_len, may_block && a->block, &cb);
    r->stat.stat = stat_of(res);
    if (res == NLM_OK)
        log_debug("nlm: %s svid %d locked [%llu +%llu] %s", o.host, o.svid,
                  (unsigned long long)a->alock.l_offset, (unsigned long long)a->alock.l_len,
                  a->exclusive ? "exclusive" : "shared");
}

static void do_cancel(struct rpc_ctx *c, const nlm4_cancargs *a, nlm4_res *r)
{
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->alock.caller_name, &a->alock.fh, GRACE_REFUSES, false,
                          &id);
    if (st != NLM4_GRANTED) {
        r->stat.stat = st;
        return;
    }
    char addr[NLM_ADDR_MAX];
    struct nlm_owner o = owner_of(c, &a->alock, addr);
    r->stat.stat = stat_of(nlm_cancel(c->srv->nlm, &id, &o, a->exclusive, a->alock.l_offset,
                                      a->alock.l_len));
}

static void do_unlock(struct rpc_ctx *c, const nlm4_unlockargs *a, nlm4_res *r)
{
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->alock.caller_name, &a->alock.fh, GRACE_REFUSES, false,
                          &id);
    if (st != NLM4_GRANTED) {
        r->stat.stat = st;
        return;
    }
    char addr[NLM_ADDR_MAX];
    struct nlm_owner o = owner_of(c, &a->alock, addr);
    r->stat.stat = stat_of(nlm_unlock(c->srv->nlm, &id, &o, a->alock.l_offset,
                                      a->alock.l_len));
}

/* ---- handlers ---- */

static void nlm_null(struct rpc_ctx *c, void *args, void *res)
{
}

static void nlm_test_h(struct rpc_ctx *c, void *args, void *res)
{
    do_test(c, args, res);
}

static void nlm_lock_h(struct rpc_ctx *c, void *args, void *res)
{
    do_lock(c, args, res, true);
}

static void nlm_cancel_h(struct rpc_ctx *c, void *args, void *res)
{
    do_cancel(c, args, res);
}

static void nlm_unlock_h(struct rpc_ctx *c, void *args, void *res)
{
    do_unlock(c, args, res);
}

/* GRANTED is the client lock manager's procedure: a server has no blocked
 * request of its own to be granted. */
static void nlm_granted_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_testargs *a = args;
    nlm4_res *r = res;
    echo_cookie(&r->cookie, &a->cookie);
    r->stat.stat = NLM4_DENIED;
}

/* Some export admits the peer: only such callers may drop every lock of
 * a host, or make this server send them datagrams (the _MSG answers). */
static bool peer_admitted(struct rpc_ctx *c)
{
    return c->exports && exports_admit(c->exports, c->peer);
}

/* Send a _MSG call's result to the caller's lock manager, if some export
 * admits it: the one sender thread's time is not for strangers (a UDP
 * _MSG call's source can be forged, and each unanswered one costs it
 * seconds). */
static void answer_msg(struct rpc_ctx *c, uint32_t proc, xdrproc_t x, void *res)
{
    if (!c->srv->nlm_cb || !peer_admitted(c))
        return;
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, c->peer, c->peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in));
    int err = nlm_cb_send(c->srv->nlm_cb, &addr, NLM_PROG, NLM_VERS, proc, x, res);
    if (err)
        log_limited(&c->srv->nlm_log, 5, 60000, LOG_LVL_WARN,
                    "nlm: cannot queue the answer to a _MSG call: %s", strerror(err));
}

static void nlm_test_msg_h(struct rpc_ctx *c, void *args, void *res)
{
    nlm4_testres r;
    memset(&r, 0, sizeof r);
    do_test(c, args, &r);
    answer_msg(c, P_TEST_RES, (xdrproc_t)xdr_nlm4_testres, &r);
}

static void nlm_lock_msg_h(struct rpc_ctx *c, void *args, void *res)
{
    nlm4_res r;
    memset(&r, 0, sizeof r);
    do_lock(c, args, &r, true);
    answer_msg(c, P_LOCK_RES, (xdrproc_t)xdr_nlm4_res, &r);
}

static void nlm_cancel_msg_h(struct rpc_ctx *c, void *args, void *res)
{
    nlm4_res r;
    memset(&r, 0, sizeof r);
    do_cancel(c, args, &r);
    answer_msg(c, P_CANCEL_RES, (xdrproc_t)xdr_nlm4_res, &r);
}

static void nlm_unlock_msg_h(struct rpc_ctx *c, void *args, void *res)
{
    nlm4_res r;
    memset(&r, 0, sizeof r);
    do_unlock(c, args, &r);
    answer_msg(c, P_UNLOCK_RES, (xdrproc_t)xdr_nlm4_res, &r);
}

/* A _RES or GRANTED_MSG sent to us: nothing to answer. */
static void nlm_ignore_h(struct rpc_ctx *c, void *args, void *res)
{
}

/* The client's answer to our GRANTED_MSG.  Anything but GRANTED means it
 * no longer wants the lock (it gave up waiting): the lock was granted to it
 * all the same, and the client unlocks it when it next sees it, so only a
 * note is logged. */
static void nlm_granted_res_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_res *a = args;
    if (a->stat.stat != NLM4_GRANTED)
        log_debug("nlm: a client answered GRANTED_MSG with status %d", (int)a->stat.stat);
}

static void nlm_share_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_shareargs *a = args;
    nlm4_shareres *r = res;
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->share.caller_name, &a->share.fh, GRACE_RECLAIMS,
                          a->reclaim, &id);
    if (st != NLM4_GRANTED) {
        r->stat = st;
        return;
    }
    char addr[NLM_ADDR_MAX];
    nfsd_peer_str(c->peer, addr, sizeof addr);
    struct nlm_owner o = {
        .host = a->share.caller_name, .addr = addr, .oh = (const uint8_t *)a->share.oh.nlm4_netobj_val,
        .ohlen = a->share.oh.nlm4_netobj_len,
    };
    r->stat = stat_of(nlm_share(c->srv->nlm, &id, &o, (unsigned)a->share.access,
                                (unsigned)a->share.mode));
}

static void nlm_unshare_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_shareargs *a = args;
    nlm4_shareres *r = res;
    echo_cookie(&r->cookie, &a->cookie);
    struct vfs_id id;
    nlm4_stats st = admit(c, a->share.caller_name, &a->share.fh, GRACE_REFUSES, false,
                          &id);
    if (st != NLM4_GRANTED) {
        r->stat = st;
        return;
    }
    char addr[NLM_ADDR_MAX];
    nfsd_peer_str(c->peer, addr, sizeof addr);
    struct nlm_owner o = {
        .host = a->share.caller_name, .addr = addr, .oh = (const uint8_t *)a->share.oh.nlm4_netobj_val,
        .ohlen = a->share.oh.nlm4_netobj_len,
    };
    r->stat = stat_of(nlm_unshare(c->srv->nlm, &id, &o));
}

/* NM_LOCK: a lock from a client that runs no statd; never blocks. */
static void nlm_nm_lock_h(struct rpc_ctx *c, void *args, void *res)
{
    do_lock(c, args, res, false);
}

/* FREE_ALL: the client says it rebooted (it names itself). */
static void nlm_free_all_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_notify *a = args;
    if (!c->srv->nlm || !caller_ok(a->name) || !peer_admitted(c))
        return;
    char addr[NLM_ADDR_MAX];
    nfsd_peer_str(c->peer, addr, sizeof addr);
    size_t n = nlm_free_host(c->srv->nlm, a->name, addr);
    log_limited(&c->srv->nlm_log, 5, 60000, LOG_LVL_INFO,
                "nlm: FREE_ALL from %s (%s): %zu locks, shares and waits dropped",
                addr, a->name, n);
}

/* Procedure 16: rpc.statd says a monitored peer rebooted (our SM_MON
 * callback); peers are monitored by address.  Only statd on this machine
 * may say that. */
static void nlm_sm_notify_h(struct rpc_ctx *c, void *args, void *res)
{
    const nlm4_sm_status *a = args;
    char peer[64];
    nfsd_peer_str(c->peer, peer, sizeof peer);
    if (strcmp(peer, "127.0.0.1") && strcmp(peer, "::1")) {
        log_limited(&c->srv->nlm_log, 5, 60000, LOG_LVL_WARN,
                    "nlm: reboot notice from %s ignored (only the local statd sends them)",
                    peer);
        return;
    }
    if (!c->srv->nlm || !caller_ok(a->mon_name))
        return;
    size_t n = nlm_free_addr(c->srv->nlm, a->mon_name);
    log_info("nlm: statd says %s restarted (state %d): %zu locks, shares and waits dropped",
             a->mon_name, a->state, n);
}

#define VOID_RES (xdrproc_t)nfsd_xdr_void, 0
static const struct rpc_proc nlm4_procs[] = {
    { "NULL", (xdrproc_t)nfsd_xdr_void, 0, VOID_RES, nlm_null, 0 },
    { "TEST", (xdrproc_t)xdr_nlm4_testargs, sizeof(nlm4_testargs), (xdrproc_t)xdr_nlm4_testres,
      sizeof(nlm4_testres), nlm_test_h, 0 },
    { "LOCK", (xdrproc_t)xdr_nlm4_lockargs, sizeof(nlm4_lockargs), (xdrproc_t)xdr_nlm4_res,
      sizeof(nlm4_res), nlm_lock_h, 0 },
    { "CANCEL", (xdrproc_t)xdr_nlm4_cancargs, sizeof(nlm4_cancargs), (xdrproc_t)xdr_nlm4_res,
      sizeof(nlm4_res), nlm_cancel_h, 0 },
    { "UNLOCK", (xdrproc_t)xdr_nlm4_unlockargs, sizeof(nlm4_unlockargs),
      (xdrproc_t)xdr_nlm4_res, sizeof(nlm4_res), nlm_unlock_h, 0 },
    { "GRANTED", (xdrproc_t)xdr_nlm4_testargs, sizeof(nlm4_testargs), (xdrproc_t)xdr_nlm4_res,
      sizeof(nlm4_res), nlm_granted_h, 0 },
    { "TEST_MSG", (xdrproc_t)xdr_nlm4_testargs, sizeof(nlm4_testargs), VOID_RES,
      nlm_test_msg_h, 0 },
    { "LOCK_MSG", (xdrproc_t)xdr_nlm4_lockargs, sizeof(nlm4_lockargs), VOID_RES,
      nlm_lock_msg_h, 0 },
    { "CANCEL_MSG", (xdrproc_t)xdr_nlm4_cancargs, sizeof(nlm4_cancargs), VOID_RES,
      nlm_cancel_msg_h, 0 },
    { "UNLOCK_MSG", (xdrproc_t)xdr_nlm4_unlockargs, sizeof(nlm4_unlockargs), VOID_RES,
      nlm_unlock_msg_h, 0 },
    { "GRANTED_MSG", (xdrproc_t)xdr_nlm4_testargs, sizeof(nlm4_testargs), VOID_RES,
      nlm_ignore_h, 0 },
    { "TEST_RES", (xdrproc_t)xdr_nlm4_testres, sizeof(nlm4_testres), VOID_RES,
      nlm_ignore_h, 0 },
    { "LOCK_RES", (xdrproc_t)xdr_nlm4_res, sizeof(nlm4_res), VOID_RES, nlm_ignore_h, 0 },
    { "CANCEL_RES", (xdrproc_t)xdr_nlm4_res, sizeof(nlm4_res), VOID_RES, nlm_ignore_h, 0 },
    { "UNLOCK_RES", (xdrproc_t)xdr_nlm4_res, sizeof(nlm4_res), VOID_RES, nlm_ignore_h, 0 },
    { "GRANTED_RES", (xdrproc_t)xdr_nlm4_res, sizeof(nlm4_res), VOID_RES, nlm_granted_res_h, 0 },
    { "SM_NOTIFY", (xdrproc_t)xdr_nlm4_sm_status, sizeof(nlm4_sm_status), VOID_RES,
      nlm_sm_notify_h, 0 },
    { .name = NULL }, { .name = NULL }, { .name = NULL },   /* 17-19: unused */
    { "SHARE", (xdrproc_t)xdr_nlm4_shareargs, sizeof(nlm4_shareargs),
      (xdrproc_t)xdr_nlm4_shareres, sizeof(nlm4_shareres), nlm_share_h, 0 },
    { "UNSHARE", (xdrproc_t)xdr_nlm4_shareargs, sizeof(nlm4_shareargs),
      (xdrproc_t)xdr_nlm4_shareres, sizeof(nlm4_shareres), nlm_unshare_h, 0 },
    { "NM_LOCK", (xdrproc_t)xdr_nlm4_lockargs, sizeof(nlm4_lockargs), (xdrproc_t)xdr_nlm4_res,
      sizeof(nlm4_res), nlm_nm_lock_h, 0 },
    { "FREE_ALL", (xdrproc_t)xdr_nlm4_notify, sizeof(nlm4_notify), VOID_RES,
      nlm_free_all_h, 0 },
};

const struct rpc_program nlm4_program = {
    "NLM", NLM_PROG, NLM_VERS, nlm4_procs, sizeof nlm4_procs / sizeof nlm4_procs[0]
};

/* ---- the table's hooks ---- */

/* A blocked request was granted: tell the client's lock manager with
 * GRANTED_MSG (called with the table's mutex held; only queues). */
static void on_granted(void *arg, const struct nlm_grant *g)
{
    struct nfsd *srv = arg;
    if (!srv->nlm_cb || !g->cb || !g->cb->addr.ss_family)
        return;                 /* queued without a way back (tests) */
    /* The client's lock manager finds its blocked request by the file
     * handle, byte for byte: the one the LOCK came with is sent back. */
    nlm4_testargs a;
    memset(&a, 0, sizeof a);
    a.exclusive = g->exclusive;
    a.alock.caller_name = (char *)g->host;
    a.alock.fh.nlm4_netobj_val = (char *)g->cb->fh;
    a.alock.fh.nlm4_netobj_len = (u_int)g->cb->fhlen;
    a.alock.oh.nlm4_netobj_val = (char *)g->oh;
    a.alock.oh.nlm4_netobj_len = (u_int)g->ohlen;
    a.alock.svid = g->svid;
    a.alock.l_offset = g->offset;
    a.alock.l_len = g->len;
    int err = nlm_cb_send(srv->nlm_cb, &g->cb->addr, NLM_PROG, NLM_VERS, P_GRANTED_MSG, (xdrproc_t)xdr_nlm4_testargs, &a);
    if (err)
        log_warn("nlm: cannot queue GRANTED_MSG to %s: %s", g->host, strerror(err));
}

/* A peer address came to hold its first lock, or lost its last: ask the
 * local rpc.statd to monitor it (SM_MON) or not (SM_UNMON), so that its
 * reboot is reported back through procedure 16.  Called with the table's
 * mutex held; only queues. */
static void on_monitor(void *arg, const char *addr, bool first)
{
    struct nfsd *srv = arg;
    if (!srv->nlm_cb)
        return;
    struct sockaddr_storage statd;
    memset(&statd, 0, sizeof statd);
    struct sockaddr_in *sin = (struct sockaddr_in *)&statd;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    nsm_mon m;
    memset(&m, 0, sizeof m);
    m.mon_id.mon_name = (char *)addr;
    m.mon_id.my_id.my_name = "127.0.0.1";
    m.mon_id.my_id.my_prog = NLM_PROG;
    m.mon_id.my_id.my_vers = NLM_VERS;
    m.mon_id.my_id.my_proc = 16;
    int err = first
        ? nlm_cb_send(srv->nlm_cb, &statd, NSM_PROG, NSM_VERS, 2, (xdrproc_t)xdr_nsm_mon, &m)
        : nlm_cb_send(srv->nlm_cb, &statd, NSM_PROG, NSM_VERS, 3, (xdrproc_t)xdr_nsm_mon_id,
                      &m.mon_id);
    if (err)
        log_warn("nlm: cannot queue SM_%sMON for %s: %s", first ? "" : "UN", addr,
                 strerror(err));
}

int nlm_start(struct nfsd *srv, unsigned grace_ms, bool statd)
{
    struct nlm_hooks hooks = { .granted = on_granted, .monitor = statd ? on_monitor : NULL,
                               .arg = srv };
    int err = nlm_table_create(NULL, &hooks, &srv->nlm);
    if (err)
        return err;
    err = nlm_cb_start(0, &srv->nlm_cb);
    if (err) {
        nlm_table_destroy(srv->nlm);
        srv->nlm = NULL;
        return err;
    }
    srv->nlm_grace_until_ms = grace_ms ? tclock_mono_ms() + grace_ms : 0;
    if (grace_ms)
        log_info("nlm: grace period for %u ms: only reclaims are granted", grace_ms);
    return 0;
}

void nlm_stop(struct nfsd *srv)
{
    nlm_cb_stop(srv->nlm_cb);
    srv->nlm_cb = NULL;
    nlm_table_destroy(srv->nlm);
    srv->nlm = NULL;
}
