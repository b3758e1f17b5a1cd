/* rpc_server.c: the transport's life: binding the sockets, starting and stopping the event loops and worker threads, and its statistics. */
#include "nfsd/rpc_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

#define DEF_MAX_CONNS      1024
#define DEF_CONNS_PER_HOST 64
#define DEF_IDLE_MS        (15u * 60 * 1000)
#define DEF_REPLY_MS       30000u
#define DEF_CONN_BUFFER    ((size_t)16 << 20)
#define DEF_MEMORY         ((size_t)256 << 20)
#define DEF_PARK_MS        10000u
#define DEF_MAX_PARKED     4096u

void rpc_server_get_stats(struct rpc_server *s, struct rpc_server_stats *st)
{
    memset(st, 0, sizeof *st);
    st->conns_open = atomic_load_explicit(&s->st_open, memory_order_relaxed);
    st->loops = s->nloops;
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *l = &s->loops[i];
        st->conns_busy += atomic_load_explicit(&l->st_busy, memory_order_relaxed);
        st->conns_paused += atomic_load_explicit(&l->st_paused, memory_order_relaxed);
        st->loop_conns[i] = atomic_load(&l->assigned);
    }
    if (st->conns_paused > st->conns_open)  /* counted at different times */
        st->conns_paused = st->conns_open;
    if (st->conns_busy > st->conns_open - st->conns_paused)
        st->conns_busy = st->conns_open - st->conns_paused;
    st->conns_accepted = atomic_load_explicit(&s->st_accepted, memory_order_relaxed);
    st->conns_refused = atomic_load_explicit(&s->st_refused, memory_order_relaxed);
    pthread_mutex_lock(&s->park_lock);
    st->parked = s->nparked;
    st->parks = s->parks;
    st->park_expired = s->park_expired;
    pthread_mutex_unlock(&s->park_lock);
    st->memory = atomic_load(&s->mem);
    st->queued = atomic_load(&s->qlen);
}

/* Resolve the listen address into a sockaddr with port 0. */
static int listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (!listen || !*listen) {
        int probe = socket(AF_INET6, SOCK_STREAM, 0);
        if (probe >= 0) {
            close(probe);
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
            a6->sin6_family = AF_INET6;
            a6->sin6_addr = in6addr_any;
            *len = sizeof *a6;
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            *len = sizeof *a4;
        }
        return 0;
    }
    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(listen, NULL, &hints, &res);
    if (rc) {
        log_error("rpc: cannot use listen address '%s': %s", listen, gai_strerror(rc));
        return EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int get_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len))
        return -1;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int open_socket(const struct sockaddr_storage *ss, socklen_t len, int type)
{
    int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (const struct sockaddr *)ss, len) ||
        (type == SOCK_STREAM && listen(fd, 128))) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Bind TCP and (unless udp is NULL) UDP on one port number (ephemeral when
 * port is 0). */
static int bind_pair(const struct sockaddr_storage *base, socklen_t len, int port,
                     int *tcp, int *udp, int *actual)
{
    for (int attempt = 0; attempt < 32; attempt++) {
        struct sockaddr_storage ss = *base;
        set_port(&ss, port);
        int t = open_socket(&ss, len, SOCK_STREAM);
        if (t < 0)
            return -t;
        int p = get_port(t);
        if (!udp) {
            *tcp = t;
            *actual = p;
            return 0;
        }
        set_port(&ss, p);
        int u = open_socket(&ss, len, SOCK_DGRAM);
        if (u >= 0) {
            *tcp = t;
            *udp = u;
            *actual = p;
            return 0;
        }
        close(t);
        if (port != 0 || u != -EADDRINUSE)
            return -u;
    }
    return EADDRINUSE;
}

static int epoll_add(int epfd, struct src *src)
{
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = src };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, src->fd, &e) ? errno : 0;
}

int rpc_server_bind(const struct rpc_server_config *cfg, struct rpc_server **out)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return ENOMEM;
    s->cfg = *cfg;
    struct rpc_limits *l = &s->lim;
    *l = cfg->limits;
    if (!l->max_conns) l->max_conns = DEF_MAX_CONNS;
    if (!l->max_conns_per_host) l->max_conns_per_host = DEF_CONNS_PER_HOST;
    if (!l->idle_timeout_ms) l->idle_timeout_ms = DEF_IDLE_MS;
    if (!l->reply_timeout_ms) l->reply_timeout_ms = DEF_REPLY_MS;
    if (!l->conn_buffer) l->conn_buffer = DEF_CONN_BUFFER;
    if (!l->memory) l->memory = DEF_MEMORY;
    if (!l->park_timeout_ms) l->park_timeout_ms = DEF_PARK_MS;
    if (!l->max_parked) l->max_parked = DEF_MAX_PARKED;
    /* Timeouts are checked once a tick: a quarter of the shortest, 50 ms..1 s. */
    s->tick_ms = 1000;
    if (l->idle_timeout_ms / 4 < s->tick_ms) s->tick_ms = l->idle_timeout_ms / 4;
    if (l->reply_timeout_ms / 4 < s->tick_ms) s->tick_ms = l->reply_timeout_ms / 4;
    if (l->park_timeout_ms / 4 < s->tick_ms) s->tick_ms = l->park_timeout_ms / 4;
    if (s->tick_ms < 50) s->tick_ms = 50;
    for (int i = 0; i < 2; i++)
        s->listeners[i].fd = s->udps[i].fd = -1;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->park_lock, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    atomic_init(&s->st_open, 0);
    atomic_init(&s->stopping, false);
    atomic_init(&s->qlen, 0);
    atomic_init(&s->mem, 0);
    atomic_init(&s->released, 0);
    atomic_init(&s->mem_wait, false);
    int ret = ENOMEM;
    s->nloops = cfg->loops ? cfg->loops : 1;
    if (s->nloops > RPC_LOOPS_MAX)
        s->nloops = RPC_LOOPS_MAX;
    s->loops = calloc(s->nloops, sizeof *s->loops);
    if (!s->loops) {
        free(s);
        return ENOMEM;
    }
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *lp = &s->loops[i];
        lp->srv = s;
        lp->idx = i;
        lp->epfd = lp->wake.fd = -1;
        lp->wake.kind = SRC_WAKE;
        atomic_init(&lp->quit, false);
        atomic_init(&lp->assigned, 0);
        atomic_init(&lp->st_busy, 0);
        atomic_init(&lp->st_paused, 0);
        pthread_mutex_init(&lp->hand_lock, NULL);
    }
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *lp = &s->loops[i];
        lp->scratch = malloc(READ_CHUNK);
        lp->epfd = epoll_create1(EPOLL_CLOEXEC);
        lp->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (lp->epfd < 0 || lp->wake.fd < 0) {
            ret = errno;
            goto fail;
        }
        if (!lp->scratch) {
            ret = ENOMEM;
            goto fail;
        }
        if ((ret = epoll_add(lp->epfd, &lp->wake)))
            goto fail;
    }
    struct sockaddr_storage base;
    socklen_t len;
    ret = listen_addr(cfg->listen, &base, &len);
    if (ret)
        goto fail;
    s->nsock = (cfg->ports[0] == cfg->ports[1] && cfg->ports[0] != 0) ? 1 : 2;
    for (int i = 0; i < s->nsock; i++) {
        ret = bind_pair(&base, len, cfg->ports[i], &s->listeners[i].fd,
                        cfg->no_udp ? NULL : &s->udps[i].fd, &s->port[i]);
        if (ret) {
            log_error("rpc: cannot bind port %d: %s", cfg->ports[i], strerror(ret));
            goto fail;
        }
        s->listeners[i].kind = SRC_TCP_LISTEN;
        s->udps[i].kind = SRC_UDP;
    }
    if (s->nsock == 1)
        s->port[1] = s->port[0];
    for (int i = 0; i < 2; i++)
        s->max_record[i] = cfg->max_record[i] ? cfg->max_record[i] : RPC_MAX_RECORD;
    if (s->nsock == 1 && s->max_record[1] > s->max_record[0])
        s->max_record[0] = s->max_record[1];
    int epfd0 = s->loops[0].epfd;       /* loop 0 accepts and reads UDP */
    for (int i = 0; i < s->nsock; i++)
        if ((ret = epoll_add(epfd0, &s->listeners[i])) ||
            (s->udps[i].fd >= 0 && (ret = epoll_add(epfd0, &s->udps[i]))))
            goto fail;
    *out = s;
    return 0;
fail:
    rpc_server_destroy(s);
    return ret;
}

int rpc_server_port(const struct rpc_server *s, int i)
{
    return s->port[i];
}

int rpc_server_start(struct rpc_server *s)
{
    s->nworkers = s->cfg.threads ? s->cfg.threads : 8;
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (!s->workers)
        return ENOMEM;
    for (unsigned i = 0; i < s->nworkers; i++) {
        int ret = pthread_create(&s->workers[i], NULL, rpc_worker_main, s);
        if (ret) {
            s->nworkers = i;
            return ret;
        }
    }
    /* Loop 0, which hands connections to the others, starts last. */
    for (unsigned i = s->nloops; i-- > 0;) {
        int ret = pthread_create(&s->loops[i].thread, NULL, rpc_listener_main, &s->loops[i]);
        if (ret)
            return ret;
        s->loops[i].started = true;
    }
    s->started = true;
    return 0;
}

void rpc_server_destroy(struct rpc_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    /* Loop 0 first: after it no connection is handed to another loop. */
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *lp = &s->loops[i];
        if (!lp->started)
            continue;
        atomic_store(&lp->quit, true);
        rpc_wake_loop(lp);
        pthread_join(lp->thread, NULL);
    }
    pthread_mutex_lock(&s->qlock);
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    /* The handler's owner stopped resuming calls before this (vfs_cancel):
     * what is still parked or queued is dropped. */
    while (s->qhead) {
        struct job *j = s->qhead;
        s->qhead = j->next;
        pthread_mutex_lock(&s->park_lock);
        bool owed = j->waiting;     /* expired, queued for its JUKEBOX */
        pthread_mutex_unlock(&s->park_lock);
        if (owed)
            log_warn("rpc: a parked call was never resumed");
        rpc_job_free(s, j);
    }
    while (s->parked) {
        struct job *j = s->parked;
        s->parked = j->pnext;
        log_warn("rpc: a parked call was never resumed");
        rpc_job_free(s, j);
    }
    for (int i = 0; i < 2; i++) {
        if (s->listeners[i].fd >= 0) close(s->listeners[i].fd);
        if (s->udps[i].fd >= 0) close(s->udps[i].fd);
    }
    for (unsigned i = 0; i < s->nloops; i++) {
        struct loop *lp = &s->loops[i];
        if (lp->wake.fd >= 0) close(lp->wake.fd);
        if (lp->epfd >= 0) close(lp->epfd);
        pthread_mutex_destroy(&lp->hand_lock);
        free(lp->scratch);
    }
    free(s->loops);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->park_lock);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_mutex_destroy(&s->log_lock);
    free(s->hosts);
    free(s);
}
