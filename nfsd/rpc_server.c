/* rpc_server.c: epoll listener thread (accept, TCP record reassembly, UDP
 * receive) feeding a queue served by worker threads that write the replies. */
#include "nfsd/rpc_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"

#define MAX_CONNS          1024
#define CONN_INFLIGHT_MAX  16      /* calls queued per connection before we stop reading */
#define QUEUE_UDP_MAX      4096    /* beyond this, UDP calls are dropped (clients retry) */
#define READ_CHUNK         65536
#define READ_BUDGET        (512 * 1024)  /* per wakeup, for fairness between connections */
#define SEND_TIMEOUT_MS    60000

enum src_kind { SRC_WAKE, SRC_TCP_LISTEN, SRC_UDP, SRC_CONN };

struct src {
    enum src_kind kind;
    int fd;
};

struct conn {
    struct src src;                 /* first: epoll data points here */
    atomic_int refs;
    pthread_mutex_t write_lock;     /* one reply at a time on the stream */
    pthread_mutex_t state_lock;     /* dead, paused, inflight */
    bool dead, paused;
    int inflight;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Reader state: touched only by the listener thread. */
    uint8_t hdr[4];
    unsigned hdr_have;
    bool in_body, frag_last;
    uint32_t frag_left;
    uint8_t *rec;
    size_t rec_len, rec_cap;
    struct conn *prev, *next;
};

struct job {
    struct job *next;
    uint8_t *data;
    size_t len;
    struct conn *conn;              /* TCP; NULL for UDP */
    int udp_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

struct rpc_server {
    struct rpc_server_config cfg;
    int epfd;
    struct src wake;
    struct src listeners[2], udps[2];
    int nsock;                      /* 1 when both ports are the same */
    int port[2];
    pthread_t listener;
    pthread_t *workers;
    unsigned nworkers;
    bool started;
    atomic_bool stopping;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct job *qhead, *qtail;
    size_t qlen;
    struct conn *conns;             /* listener thread only */
    unsigned nconns;
};

static void conn_unref(struct conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    close(c->src.fd);
    pthread_mutex_destroy(&c->write_lock);
    pthread_mutex_destroy(&c->state_lock);
    free(c->rec);
    free(c);
}

/* Listener: stop reading c, wake anyone blocked on it, drop our reference. */
static void conn_close(struct rpc_server *s, struct conn *c)
{
    pthread_mutex_lock(&c->state_lock);
    c->dead = true;
    pthread_mutex_unlock(&c->state_lock);
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->src.fd, NULL);
    shutdown(c->src.fd, SHUT_RDWR);
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    conn_unref(c);
}

static void queue_push(struct rpc_server *s, struct job *j)
{
    pthread_mutex_lock(&s->qlock);
    j->next = NULL;
    if (s->qtail) s->qtail->next = j; else s->qhead = j;
    s->qtail = j;
    s->qlen++;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
}

static void set_conn_events(struct rpc_server *s, struct conn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = &c->src };
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->src.fd, &e);
}

/* Hand one complete record to the workers; pause reading when the client
 * has too many calls outstanding. */
static void conn_submit(struct rpc_server *s, struct conn *c)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        log_error("rpc: out of memory; dropping a call");
        free(c->rec);
        goto reset;
    }
    j->data = c->rec;
    j->len = c->rec_len;
    j->conn = c;
    j->peer = c->peer;
    j->peer_len = c->peer_len;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_lock(&c->state_lock);
    if (++c->inflight >= CONN_INFLIGHT_MAX && !c->paused) {
        c->paused = true;
        set_conn_events(s, c, 0);
    }
    pthread_mutex_unlock(&c->state_lock);
    queue_push(s, j);
reset:
    c->rec = NULL;
    c->rec_len = c->rec_cap = 0;
}

/* Feed n bytes to the record-marking parser.  Returns false when the
 * connection must be dropped (record too large). */
static bool conn_parse(struct rpc_server *s, struct conn *c, const uint8_t *p, size_t n)
{
    while (n) {
        if (!c->in_body) {
            size_t take = 4 - c->hdr_have < n ? 4 - c->hdr_have : n;
            memcpy(c->hdr + c->hdr_have, p, take);
            c->hdr_have += (unsigned)take;
            p += take;
            n -= take;
            if (c->hdr_have < 4)
                return true;
            uint32_t mark = ((uint32_t)c->hdr[0] << 24) | ((uint32_t)c->hdr[1] << 16) |
                            ((uint32_t)c->hdr[2] << 8) | c->hdr[3];
            c->hdr_have = 0;
            c->frag_last = mark >> 31;
            c->frag_left = mark & 0x7fffffffu;
            if (c->rec_len + c->frag_left > RPC_MAX_RECORD) {
                log_warn("rpc: record over %d bytes from a client; dropping the connection",
                         RPC_MAX_RECORD);
                return false;
            }
            if (c->rec_len + c->frag_left > c->rec_cap) {
                size_t cap = c->rec_len + c->frag_left;
                uint8_t *nr = realloc(c->rec, cap ? cap : 1);
                if (!nr)
                    return false;
                c->rec = nr;
                c->rec_cap = cap;
            }
            c->in_body = true;
        }
        size_t take = c->frag_left < n ? c->frag_left : n;
        memcpy(c->rec + c->rec_len, p, take);
        c->rec_len += take;
        c->frag_left -= (uint32_t)take;
        p += take;
        n -= take;
        if (c->frag_left == 0) {
            c->in_body = false;
            if (c->frag_last)
                conn_submit(s, c);
        }
    }
    return true;
}

static void conn_readable(struct rpc_server *s, struct conn *c)
{
    uint8_t buf[READ_CHUNK];
    size_t budget = READ_BUDGET;
    while (budget) {
        ssize_t r;
        /* Large fragment bodies go straight into the record buffer. */
        if (c->in_body && c->frag_left >= sizeof buf) {
            r = recv(c->src.fd, c->rec + c->rec_len, c->frag_left, 0);
            if (r > 0) {
                c->rec_len += (size_t)r;
                c->frag_left -= (uint32_t)r;
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (c->frag_left == 0) {
                    c->in_body = false;
                    if (c->frag_last)
                        conn_submit(s, c);
                }
                continue;
            }
        } else {
            r = recv(c->src.fd, buf, sizeof buf, 0);
            if (r > 0) {
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (!conn_parse(s, c, buf, (size_t)r)) {
                    conn_close(s, c);
                    return;
                }
                continue;
            }
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0 && errno == EINTR)
            continue;
        conn_close(s, c);       /* EOF or error */
        return;
    }
}

static void accept_conns(struct rpc_server *s, int lfd)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("rpc: accept: %s", strerror(errno));
            return;
        }
        if (s->nconns >= MAX_CONNS) {
            log_warn("rpc: %d connections open; refusing another", MAX_CONNS);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->src.kind = SRC_CONN;
        c->src.fd = fd;
        atomic_init(&c->refs, 1);
        pthread_mutex_init(&c->write_lock, NULL);
        pthread_mutex_init(&c->state_lock, NULL);
        c->peer = peer;
        c->peer_len = plen;
        struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->src };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e)) {
            conn_unref(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
}

static void udp_readable(struct rpc_server *s, int fd)
{
    for (int i = 0; i < 64; i++) {
        struct job *j = calloc(1, sizeof *j);
        uint8_t *buf = malloc(RPC_UDP_MAX);
        if (!j || !buf) {
            free(j);
            free(buf);
            return;
        }
        j->peer_len = sizeof j->peer;
        ssize_t r = recvfrom(fd, buf, RPC_UDP_MAX, 0, (struct sockaddr *)&j->peer, &j->peer_len);
        if (r < 0 || s->qlen > QUEUE_UDP_MAX) {
            free(j);
            free(buf);
            if (r < 0)
                return;
            continue;
        }
        j->data = buf;
        j->len = (size_t)r;
        j->udp_fd = fd;
        queue_push(s, j);
    }
}

static void *listener_main(void *arg)
{
    struct rpc_server *s = arg;
    struct epoll_event ev[64];
    while (!atomic_load(&s->stopping)) {
        int n = epoll_wait(s->epfd, ev, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("rpc: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct src *src = ev[i].data.ptr;
            switch (src->kind) {
            case SRC_WAKE:
                break;
            case SRC_TCP_LISTEN:
                accept_conns(s, src->fd);
                break;
            case SRC_UDP:
                udp_readable(s, src->fd);
                break;
            case SRC_CONN: {
                struct conn *c = (struct conn *)src;
                if (ev[i].events & EPOLLIN)
                    conn_readable(s, c);
                else if (ev[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                    conn_close(s, c);
                break;
            }
            }
        }
    }
    while (s->conns)
        conn_close(s, s->conns);
    return NULL;
}

/* Send the iovecs completely (a blocking write with a timeout on a
 * non-blocking socket); iov is consumed.  Returns 0 or an errno. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w > 0) {
            size_t left = (size_t)w;
            while (iovcnt > 0 && left >= iov->iov_len) {
                left -= iov->iov_len;
                iov++;
                iovcnt--;
            }
            if (iovcnt > 0) {
                iov->iov_base = (char *)iov->iov_base + left;
                iov->iov_len -= left;
            }
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            int r = poll(&pfd, 1, SEND_TIMEOUT_MS);
            if (r > 0 && !(pfd.revents & (POLLERR | POLLHUP)))
                continue;
            return ETIMEDOUT;
        }
        return w < 0 ? errno : EIO;
    }
    return 0;
}

static void run_job(struct rpc_server *s, struct job *j)
{
    struct rpc_call_in call = {
        .data = j->data, .len = j->len,
        .peer = (const struct sockaddr *)&j->peer, .peer_len = j->peer_len,
        .is_tcp = j->conn != NULL,
        .max_reply = j->conn ? RPC_MAX_RECORD : RPC_UDP_MAX - 100,
    };
    struct rpc_reply_out reply = { 0 };
    s->cfg.handler(s->cfg.ctx, &call, &reply);
    if (reply.buf && j->conn) {
        struct conn *c = j->conn;
        uint32_t mark = 0x80000000u | (uint32_t)(reply.len + reply.tail_len);
        reply.buf[0] = (uint8_t)(mark >> 24);
        reply.buf[1] = (uint8_t)(mark >> 16);
        reply.buf[2] = (uint8_t)(mark >> 8);
        reply.buf[3] = (uint8_t)mark;
        struct iovec iov[2] = {
            { reply.buf, reply.len + RPC_REPLY_HEADROOM },
            { reply.tail, reply.tail_len },
        };
        pthread_mutex_lock(&c->write_lock);
        int err = send_all(c->src.fd, iov, reply.tail ? 2 : 1);
        pthread_mutex_unlock(&c->write_lock);
        if (err)    /* the listener sees the shutdown and cleans up */
            shutdown(c->src.fd, SHUT_RDWR);
    } else if (reply.buf) {
        struct iovec iov[2] = {
            { reply.buf + RPC_REPLY_HEADROOM, reply.len },
            { reply.tail, reply.tail_len },
        };
        struct msghdr mh = { .msg_name = &j->peer, .msg_namelen = j->peer_len,
                             .msg_iov = iov, .msg_iovlen = reply.tail ? 2 : 1 };
        sendmsg(j->udp_fd, &mh, MSG_NOSIGNAL);
    }
    free(reply.buf);
    free(reply.tail);
    if (j->conn) {
        struct conn *c = j->conn;
        pthread_mutex_lock(&c->state_lock);
        if (--c->inflight < CONN_INFLIGHT_MAX && c->paused && !c->dead) {
            c->paused = false;
            set_conn_events(s, c, EPOLLIN | EPOLLRDHUP);
        }
        pthread_mutex_unlock(&c->state_lock);
        conn_unref(c);
    }
    free(j->data);
    free(j);
}

static void *worker_main(void *arg)
{
    struct rpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->qcond, &s->qlock);
        if (atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->qlock);
            return NULL;
        }
        struct job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qlen--;
        pthread_mutex_unlock(&s->qlock);
        run_job(s, j);
    }
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

/* Bind TCP and UDP on one port number (ephemeral when port is 0). */
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
    s->epfd = -1;
    s->wake.fd = -1;
    for (int i = 0; i < 2; i++)
        s->listeners[i].fd = s->udps[i].fd = -1;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    atomic_init(&s->stopping, false);
    struct sockaddr_storage base;
    socklen_t len;
    int ret = listen_addr(cfg->listen, &base, &len);
    if (ret)
        goto fail;
    s->nsock = (cfg->ports[0] == cfg->ports[1] && cfg->ports[0] != 0) ? 1 : 2;
    for (int i = 0; i < s->nsock; i++) {
        ret = bind_pair(&base, len, cfg->ports[i], &s->listeners[i].fd, &s->udps[i].fd,
                        &s->port[i]);
        if (ret) {
            log_error("rpc: cannot bind port %d: %s", cfg->ports[i], strerror(ret));
            goto fail;
        }
        s->listeners[i].kind = SRC_TCP_LISTEN;
        s->udps[i].kind = SRC_UDP;
    }
    if (s->nsock == 1)
        s->port[1] = s->port[0];
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake.kind = SRC_WAKE;
    s->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->wake.fd < 0) {
        ret = errno;
        goto fail;
    }
    if ((ret = epoll_add(s->epfd, &s->wake)))
        goto fail;
    for (int i = 0; i < s->nsock; i++)
        if ((ret = epoll_add(s->epfd, &s->listeners[i])) ||
            (ret = epoll_add(s->epfd, &s->udps[i])))
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
        int ret = pthread_create(&s->workers[i], NULL, worker_main, s);
        if (ret) {
            s->nworkers = i;
            return ret;
        }
    }
    int ret = pthread_create(&s->listener, NULL, listener_main, s);
    if (ret)
        return ret;
    s->started = true;
    return 0;
}

void rpc_server_destroy(struct rpc_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    if (s->wake.fd >= 0) {
        uint64_t one = 1;
        if (write(s->wake.fd, &one, sizeof one) < 0)
            log_warn("rpc: wake: %s", strerror(errno));
    }
    if (s->started)
        pthread_join(s->listener, NULL);
    pthread_mutex_lock(&s->qlock);
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    while (s->qhead) {
        struct job *j = s->qhead;
        s->qhead = j->next;
        if (j->conn)
            conn_unref(j->conn);
        free(j->data);
        free(j);
    }
    for (int i = 0; i < 2; i++) {
        if (s->listeners[i].fd >= 0) close(s->listeners[i].fd);
        if (s->udps[i].fd >= 0) close(s->udps[i].fd);
    }
    if (s->wake.fd >= 0) close(s->wake.fd);
    if (s->epfd >= 0) close(s->epfd);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    free(s);
}
