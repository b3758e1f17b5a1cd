/* nlm_wire.c: FREE_ALL and LOCK_MSG over libtirpc, and a stand-in client
 * lock manager (a UDP socket registered with rpcbind) for tests/nfs. */
#include "nlm_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <rpc/pmap_clnt.h>
#include <rpc/rpc.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* xdr_void with the xdrproc_t shape. */
static bool_t no_result(XDR *x, void *p)
{
    (void)x;
    (void)p;
    return TRUE;
}

#define NLM_PROG 100021
#define NLM_VERS 4

static struct sockaddr_in local(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

struct notify { char *name; int state; };

static bool_t xdr_notify(XDR *x, struct notify *n)
{
    return xdr_string(x, &n->name, 1024) && xdr_int(x, &n->state);
}

int wire_free_all(int port, const char *name)
{
    struct sockaddr_in a = local(port);
    int sock = RPC_ANYSOCK;
    CLIENT *cl = clnttcp_create(&a, NLM_PROG, NLM_VERS, &sock, 0, 0);
    if (!cl)
        return -1;
    struct notify n = { (char *)name, 0 };
    struct timeval tv = { 10, 0 };
    enum clnt_stat st = clnt_call(cl, 23, (xdrproc_t)xdr_notify, (caddr_t)&n,
                                  (xdrproc_t)no_result, NULL, tv);
    clnt_destroy(cl);
    return st == RPC_SUCCESS ? 0 : -1;
}

struct shareargs {
    const char *caller;
    const void *fh;
    unsigned fhlen;
    unsigned access, deny;
};

static bool_t xdr_shareargs(XDR *x, struct shareargs *a)
{
    char cookie[4] = "sh1";
    char *cp = cookie, *caller = (char *)a->caller, *fh = (char *)a->fh, *oh = "share-oh";
    u_int clen = 4, fhlen = a->fhlen, ohlen = 8;
    int mode = (int)a->deny, access = (int)a->access;
    bool_t reclaim = FALSE;
    return xdr_bytes(x, &cp, &clen, 1024) && xdr_string(x, &caller, 1024) &&
           xdr_bytes(x, &fh, &fhlen, 1024) && xdr_bytes(x, &oh, &ohlen, 1024) &&
           xdr_int(x, &mode) && xdr_int(x, &access) && xdr_bool(x, &reclaim);
}

struct shareres { int stat; };

static bool_t xdr_shareres(XDR *x, struct shareres *r)
{
    char cookie[1024], *cp = cookie;
    u_int clen = 0;
    int seq;
    return xdr_bytes(x, &cp, &clen, sizeof cookie) && xdr_int(x, &r->stat) &&
           xdr_int(x, &seq);
}

int wire_share(int port, bool unshare, const char *caller, const void *fh, unsigned fhlen,
               unsigned access, unsigned deny)
{
    struct sockaddr_in a = local(port);
    int sock = RPC_ANYSOCK;
    CLIENT *cl = clnttcp_create(&a, NLM_PROG, NLM_VERS, &sock, 0, 0);
    if (!cl)
        return -1;
    struct shareargs sa = { caller, fh, fhlen, access, deny };
    struct shareres r = { -1 };
    struct timeval tv = { 10, 0 };
    enum clnt_stat st = clnt_call(cl, unshare ? 21 : 20, (xdrproc_t)xdr_shareargs,
                                  (caddr_t)&sa, (xdrproc_t)xdr_shareres, (caddr_t)&r, tv);
    clnt_destroy(cl);
    return st == RPC_SUCCESS ? r.stat : -1;
}

int wire_sm_notify(const char *mon_name, int state)
{
    CLIENT *cl = clnt_create("127.0.0.1", 100024, 1, "udp");
    if (!cl)
        return -1;
    struct notify n = { (char *)mon_name, state };
    struct timeval tv = { 10, 0 };
    enum clnt_stat st = clnt_call(cl, 6, (xdrproc_t)xdr_notify, (caddr_t)&n,
                                  (xdrproc_t)no_result, NULL, tv);
    clnt_destroy(cl);
    return st == RPC_SUCCESS ? 0 : -1;
}

struct lockargs {
    const char *caller;
    const void *fh;
    unsigned fhlen;
    int32_t svid;
    uint64_t offset, len;
};

static bool_t xdr_lockargs(XDR *x, struct lockargs *a)
{
    char cookie[4] = "ck1";
    char *cp = cookie, *caller = (char *)a->caller, *fh = (char *)a->fh, *oh = "wire-oh";
    u_int clen = 4, fhlen = a->fhlen, ohlen = 7;
    bool_t block = FALSE, excl = TRUE, reclaim = FALSE;
    int state = 0, svid = a->svid;
    uint64_t off = a->offset, len = a->len;
    return xdr_bytes(x, &cp, &clen, 1024) && xdr_bool(x, &block) && xdr_bool(x, &excl) &&
           xdr_string(x, &caller, 1024) && xdr_bytes(x, &fh, &fhlen, 1024) &&
           xdr_bytes(x, &oh, &ohlen, 1024) && xdr_int(x, &svid) &&
           xdr_u_int64_t(x, &off) && xdr_u_int64_t(x, &len) && xdr_bool(x, &reclaim) &&
           xdr_int(x, &state);
}

int wire_lock_msg(int port, const char *caller, const void *fh, unsigned fhlen, int32_t svid,
                  uint64_t offset, uint64_t len)
{
    /* One datagram, no answer awaited: the answer comes as LOCK_RES. */
    struct sockaddr_in a = local(port);
    char buf[4096];
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.rm_xid = (uint32_t)getpid();
    m.rm_direction = CALL;
    m.rm_call.cb_rpcvers = 2;
    m.rm_call.cb_prog = NLM_PROG;
    m.rm_call.cb_vers = NLM_VERS;
    m.rm_call.cb_proc = 7;                  /* LOCK_MSG */
    m.rm_call.cb_cred = _null_auth;
    m.rm_call.cb_verf = _null_auth;
    struct lockargs la = { caller, fh, fhlen, svid, offset, len };
    XDR x;
    xdrmem_create(&x, buf, sizeof buf, XDR_ENCODE);
    bool ok = xdr_callmsg(&x, &m) && xdr_lockargs(&x, &la);
    size_t n = xdr_getpos(&x);
    xdr_destroy(&x);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ok = ok && sendto(fd, buf, n, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

int wire_lockd_open(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = local(0);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pmap_unset(NLM_PROG, NLM_VERS);
    if (!pmap_set(NLM_PROG, NLM_VERS, IPPROTO_UDP, ntohs(a.sin_port))) {
        close(fd);
        return -1;
    }
    return fd;
}

void wire_lockd_close(int fd)
{
    pmap_unset(NLM_PROG, NLM_VERS);
    close(fd);
}

int wire_lockd_wait(int fd, int ms, struct wire_call *out)
{
    memset(out, 0, sizeof *out);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) != 1)
        return -1;
    char buf[8192], credbuf[MAX_AUTH_BYTES], verfbuf[MAX_AUTH_BYTES];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
        return -1;
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.rm_call.cb_cred.oa_base = credbuf;
    m.rm_call.cb_verf.oa_base = verfbuf;
    XDR x;
    xdrmem_create(&x, buf, (u_int)n, XDR_DECODE);
    int rc = -1;
    if (!xdr_callmsg(&x, &m) || m.rm_call.cb_prog != NLM_PROG || m.rm_call.cb_vers != NLM_VERS)
        goto out;
    out->proc = (uint32_t)m.rm_call.cb_proc;
    char cookie[1024], *cp = cookie;
    u_int clen = 0;
    if (!xdr_bytes(&x, &cp, &clen, sizeof cookie))
        goto out;
    if (out->proc >= 11 && out->proc <= 15) {      /* _RES: cookie, status */
        rc = xdr_int(&x, &out->status) ? 0 : -1;
        goto out;
    }
    if (out->proc == 10) {                          /* GRANTED_MSG: testargs */
        bool_t excl;
        char *caller = out->caller, fh[1024], *fp = fh, oh[1024], *op = oh;
        u_int fhlen = 0, ohlen = 0;
        if (xdr_bool(&x, &excl) && xdr_string(&x, &caller, sizeof out->caller) &&
            xdr_bytes(&x, &fp, &fhlen, sizeof fh) && xdr_bytes(&x, &op, &ohlen, sizeof oh) &&
            xdr_int(&x, &out->svid) && xdr_u_int64_t(&x, &out->offset) &&
            xdr_u_int64_t(&x, &out->len)) {
            out->exclusive = excl;
            out->fhlen = fhlen;
            rc = 0;
        }
        goto out;
    }
    rc = 0;
out:
    xdr_destroy(&x);
    return rc;
}
