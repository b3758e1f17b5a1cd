/* nlm_cb.c: the NLM callback sender: a bounded queue of encoded one-way NLM
 * calls and the one thread that looks up each client's NLM port with its
 * rpcbind (PMAP GETPORT over UDP) and sends the call as a UDP datagram. */
#include "nfsd/nlm_cb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <rpc/pmap_prot.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

/* How long the sender waits for one rpcbind answer, and how often it asks. */
#define GETPORT_WAIT_MS 1000
#define GETPORT_TRIES   2
#define MSG_MAX         4096

struct msg {
    struct msg *next;
    struct sockaddr_storage addr;
    uint32_t prog, vers, proc;
    size_t len;
    uint8_t body[];             /* the encoded arguments */
};

struct nlm_cb {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stop;
    struct msg *head, **tail;
    unsigned n, max;
    uint32_t xid;
    uint64_t sent, dropped;
    struct log_limit log;       /* "no such service" lines: any client causes them */
};

/* Address of addr's host with port set. */
static socklen_t with_port(const struct sockaddr_storage *addr, uint16_t port,
                           struct sockaddr_storage *out)
{
    *out = *addr;
    if (addr->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
        return sizeof(struct sockaddr_in6);
    }
    ((struct sockaddr_in *)out)->sin_port = htons(port);
    return sizeof(struct sockaddr_in);
}

/* Encode an RPC call header (AUTH_SYS as root, as knfsd's callbacks) for
 * prog/vers/proc, then len bytes of arguments, into buf; 0 when too long. */
static size_t encode_call(uint8_t *buf, size_t cap, uint32_t xid, uint32_t prog,
                          uint32_t vers, uint32_t proc, const uint8_t *args, size_t len)
{
    static const char name[] = "tarnfsd";
    uint8_t cred[64];
    XDR cx;
    xdrmem_create(&cx, (char *)cred, sizeof cred, XDR_ENCODE);
    u_int stamp = 0, uid = 0, gid = 0, ngids = 0, namelen = sizeof name - 1;
    bool ok = xdr_u_int(&cx, &stamp) && xdr_u_int(&cx, &namelen) &&
              xdr_opaque(&cx, (char *)name, namelen) && xdr_u_int(&cx, &uid) &&
              xdr_u_int(&cx, &gid) && xdr_u_int(&cx, &ngids);
    u_int credlen = xdr_getpos(&cx);
    xdr_destroy(&cx);
    if (!ok)
        return 0;
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.rm_xid = xid;
    m.rm_direction = CALL;
    m.rm_call.cb_rpcvers = 2;
    m.rm_call.cb_prog = prog;
    m.rm_call.cb_vers = vers;
    m.rm_call.cb_proc = proc;
    m.rm_call.cb_cred.oa_flavor = AUTH_SYS;
    m.rm_call.cb_cred.oa_base = (char *)cred;
    m.rm_call.cb_cred.oa_length = credlen;
    m.rm_call.cb_verf = _null_auth;
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)cap, XDR_ENCODE);
    ok = xdr_callmsg(&x, &m);
    size_t at = xdr_getpos(&x);
    xdr_destroy(&x);
    if (!ok || cap - at < len)
        return 0;
    memcpy(buf + at, args, len);
    return at + len;
}

/* Ask rpcbind on addr's host for the UDP port of prog/vers; 0 when none.
 * Takes at most GETPORT_TRIES * GETPORT_WAIT_MS, whatever arrives. */
static uint16_t getport(struct nlm_cb *cb, const struct sockaddr_storage *addr, uint32_t prog,
                        uint32_t vers)
{
    int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_storage to;
    socklen_t tolen = with_port(addr, PMAPPORT, &to);
    /* Connected: the kernel drops datagrams from anyone but that rpcbind. */
    if (connect(fd, (struct sockaddr *)&to, tolen) != 0) {
        close(fd);
        return 0;
    }
    uint8_t args[16], buf[512];
    uint32_t a[4] = { htonl(prog), htonl(vers), htonl(IPPROTO_UDP), 0 };
    memcpy(args, a, sizeof a);
    uint16_t port = 0;
    for (int i = 0; i < GETPORT_TRIES && !port; i++) {
        uint32_t xid = ++cb->xid;
        size_t n = encode_call(buf, sizeof buf, xid, PMAPPROG, PMAPVERS, PMAPPROC_GETPORT,
                               args, sizeof args);
        if (!n || send(fd, buf, n, 0) < 0)
            break;
        /* One deadline per try: datagrams that are not the answer (junk,
         * late answers) do not make the wait start again. */
        int64_t until = tclock_mono_ms() + GETPORT_WAIT_MS, left;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        while ((left = until - tclock_mono_ms()) > 0 && poll(&p, 1, (int)left) == 1) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r < 0)
                break;
            struct rpc_msg m;
            u_int result = 0;
            memset(&m, 0, sizeof m);
            m.acpted_rply.ar_verf = _null_auth;
            m.acpted_rply.ar_results.where = (caddr_t)&result;
            m.acpted_rply.ar_results.proc = (xdrproc_t)xdr_u_int;
            XDR x;
            xdrmem_create(&x, (char *)buf, (u_int)r, XDR_DECODE);
            bool ok = xdr_replymsg(&x, &m);
            xdr_destroy(&x);
            if (!ok || m.rm_xid != xid)
                continue;           /* a late answer to an earlier try */
            if (m.rm_reply.rp_stat == MSG_ACCEPTED && m.acpted_rply.ar_stat == SUCCESS &&
                result > 0 && result < 65536)
                port = (uint16_t)result;
            i = GETPORT_TRIES;      /* answered: no more tries */
            break;
        }
    }
    close(fd);
    return port;
}

static void send_one(struct nlm_cb *cb, const struct msg *m)
{
    char host[INET6_ADDRSTRLEN] = "?";
    const void *a = m->addr.ss_family == AF_INET6
        ? (const void *)&((const struct sockaddr_in6 *)&m->addr)->sin6_addr
        : (const void *)&((const struct sockaddr_in *)&m->addr)->sin_addr;
    inet_ntop(m->addr.ss_family, a, host, sizeof host);
    uint16_t port = getport(cb, &m->addr, m->prog, m->vers);
    if (!port) {
        log_limited(&cb->log, 5, 60000, LOG_LVL_WARN,
                    "nlm: no program %u version %u registered at %s; call %u dropped",
                    m->prog, m->vers, host, m->proc);
        __atomic_add_fetch(&cb->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    uint8_t buf[MSG_MAX + 512];
    size_t n = encode_call(buf, sizeof buf, ++cb->xid, m->prog, m->vers, m->proc,
                           m->body, m->len);
    struct sockaddr_storage to;
    socklen_t tolen = with_port(&m->addr, port, &to);
    int fd = socket(m->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && n && sendto(fd, buf, n, 0, (struct sockaddr *)&to, tolen) == (ssize_t)n;
    if (fd >= 0)
        close(fd);
    if (ok) {
        log_debug("nlm: sent procedure %u of program %u to %s port %u", m->proc, m->prog,
                  host, port);
        __atomic_add_fetch(&cb->sent, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&cb->dropped, 1, __ATOMIC_RELAXED);
    }
}

static void *sender(void *arg)
{
    struct nlm_cb *cb = arg;
    pthread_mutex_lock(&cb->mu);
    for (;;) {
        while (!cb->stop && !cb->head)
            pthread_cond_wait(&cb->cv, &cb->mu);
        if (cb->stop)
            break;
        struct msg *m = cb->head;
        cb->head = m->next;
        if (!cb->head)
            cb->tail = &cb->head;
        cb->n--;
        pthread_mutex_unlock(&cb->mu);
        send_one(cb, m);
        free(m);
        pthread_mutex_lock(&cb->mu);
    }
    pthread_mutex_unlock(&cb->mu);
    return NULL;
}

int nlm_cb_start(unsigned queue_max, struct nlm_cb **out)
{
    struct nlm_cb *cb = calloc(1, sizeof *cb);
    if (!cb)
        return ENOMEM;
    pthread_mutex_init(&cb->mu, NULL);
    pthread_cond_init(&cb->cv, NULL);
    cb->tail = &cb->head;
    cb->max = queue_max ? queue_max : 1024;
    if (getrandom(&cb->xid, sizeof cb->xid, 0) != sizeof cb->xid)
        cb->xid = (uint32_t)getpid() << 16;
    int err = pthread_create(&cb->thread, NULL, sender, cb);
    if (err) {
        pthread_cond_destroy(&cb->cv);
        pthread_mutex_destroy(&cb->mu);
        free(cb);
        return err;
    }
    *out = cb;
    return 0;
}

void nlm_cb_stop(struct nlm_cb *cb)
{
    if (!cb)
        return;
    pthread_mutex_lock(&cb->mu);
    cb->stop = true;
    pthread_cond_signal(&cb->cv);
    pthread_mutex_unlock(&cb->mu);
    pthread_join(cb->thread, NULL);
    while (cb->head) {
        struct msg *m = cb->head;
        cb->head = m->next;
        free(m);
    }
    pthread_cond_destroy(&cb->cv);
    pthread_mutex_destroy(&cb->mu);
    free(cb);
}

int nlm_cb_send(struct nlm_cb *cb, const struct sockaddr_storage *addr, uint32_t prog,
                uint32_t vers, uint32_t proc, xdrproc_t xargs, void *args)
{
    unsigned long size = xdr_sizeof(xargs, args);
    if (!size || size > MSG_MAX)
        return EINVAL;
    struct msg *m = malloc(sizeof *m + size);
    if (!m)
        return ENOMEM;
    XDR x;
    xdrmem_create(&x, (char *)m->body, (u_int)size, XDR_ENCODE);
    bool ok = xargs(&x, args);
    m->len = xdr_getpos(&x);
    xdr_destroy(&x);
    if (!ok) {
        free(m);
        return EINVAL;
    }
    m->next = NULL;
    m->addr = *addr;
    m->prog = prog;
    m->vers = vers;
    m->proc = proc;
    pthread_mutex_lock(&cb->mu);
    if (cb->n >= cb->max) {
        __atomic_add_fetch(&cb->dropped, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&cb->mu);
        free(m);
        return ENOBUFS;
    }
    *cb->tail = m;
    cb->tail = &m->next;
    cb->n++;
    pthread_cond_signal(&cb->cv);
    pthread_mutex_unlock(&cb->mu);
    return 0;
}

void nlm_cb_counts(struct nlm_cb *cb, uint64_t *sent, uint64_t *dropped)
{
    *sent = __atomic_load_n(&cb->sent, __ATOMIC_RELAXED);
    *dropped = __atomic_load_n(&cb->dropped, __ATOMIC_RELAXED);
}
