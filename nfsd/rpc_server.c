/* rpc_server.c: epoll event loop (accept, TCP record reassembly, UDP receive,
 * queued replies written when a socket is writable, limits and timeouts)
 * feeding a queue served by worker threads that never wait on a socket. */
#include "nfsd/rpc_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

#define CONN_INFLIGHT_MAX  16      /* calls queued per connection before we stop reading */
#define CONN_PARKED_MAX    256     /* calls parked per connection; more are told JUKEBOX */
#define QUEUE_UDP_MAX      4096    /* beyond this, UDP calls are dropped (clients retry) */
#define READ_CHUNK         65536   /* also the UDP receive buffer: >= RPC_UDP_MAX */
#define READ_SMALL         4096    /* a read that starts between records */
#define READ_BUDGET        (512 * 1024)  /* per wakeup, for fairness between connections */
#define REC_MIN_ALLOC      16384   /* first allocation for a record's bytes */
#define OUT_IOV_MAX        64      /* iovecs per sendmsg of queued replies */
#define LISTENER_SENDS     4       /* sendmsg calls per EPOLLOUT event */
#define WORKER_SENDS       16      /* sendmsg calls a worker makes after queueing */
#define ACCEPT_BACKOFF_MS  500     /* listener not polled this long after EMFILE */
#define LOG_EVERY_MS       60000   /* repeated warnings: at most one per minute */

#define DEF_MAX_CONNS      1024
#define DEF_CONNS_PER_HOST 64
#define DEF_IDLE_MS        (15u * 60 * 1000)
#define DEF_REPLY_MS       30000u
#define DEF_CONN_BUFFER    ((size_t)16 << 20)
#define DEF_MEMORY         ((size_t)256 << 20)
#define DEF_PARK_MS        10000u
#define DEF_MAX_PARKED     4096u

enum src_kind { SRC_WAKE, SRC_TCP_LISTEN, SRC_UDP, SRC_CONN };

struct src {
    enum src_kind kind;
    int fd;
};

/* One reply record waiting for its socket: buf (record mark + encoded
 * reply), then tail; sent counts the bytes of both already written. */
struct outbuf {
    struct outbuf *next;
    uint8_t *buf, *tail;
    size_t len, tail_len, sent;
};

struct conn {
    struct src src;                 /* first: epoll data points here */
    atomic_int refs;
    pthread_mutex_t lock;           /* the fields up to the reader state */
    bool dead;                      /* closed by the listener */
    bool broken;                    /* a send failed: shut down, to be closed */
    bool mem_paused;                /* not read: the server is over its memory limit */
    bool sending;                   /* a thread is in sendmsg for c, without the lock */
    int inflight;                   /* calls queued or running */
    int parked;                     /* calls parked (not in inflight: a client's
                                       calls of cached data are still read) */
    size_t queued_in;               /* bytes of those calls' records */
    struct outbuf *out_head, *out_tail;
    size_t out_bytes;               /* bytes of replies not yet written */
    int64_t out_progress_ms;        /* last write progress, or when output was queued */
    int64_t active_ms;              /* last byte read or written */
    uint32_t events;                /* epoll interest set now */
    struct in6_addr host;           /* peer address, v4 as v4-mapped */
    size_t max_record;              /* of the port it came in on */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Reader state: touched only by the listener thread. */
    uint8_t hdr[4];
    unsigned hdr_have;
    bool in_body, frag_last;
    uint32_t frag_left;
    uint8_t *rec;                   /* grows as bytes arrive, never from the mark alone */
    size_t rec_len, rec_cap;
    struct conn *prev, *next;
};

struct job {
    struct job *next;
    uint8_t *data;
    size_t len, cap;                /* cap: bytes counted against the memory limit */
    struct conn *conn;              /* TCP; NULL for UDP */
    int udp_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Parking, guarded by the server's park_lock. */
    struct rpc_server *srv;
    struct job *pprev, *pnext;      /* the parked list, while parked */
    int64_t parked_ms;              /* when first parked, 0 if never */
    bool in_handler;                /* a worker runs the handler on it now */
    bool resumed;                   /* resumed while in the handler */
    bool waiting;                   /* a resume is owed (parked or expired) */
    bool expired;                   /* past park_timeout: to be answered
                                       "retry later", then freed by whichever
                                       of that answer and the resume is last */
    bool answered;                  /* expired and answered */
    int wake_err;
};

/* A warning repeated at most once per LOG_EVERY_MS (listener thread only). */
struct ratelog {
    bool used;
    int64_t last_ms;
    unsigned suppressed;
};

struct rpc_server {
    struct rpc_server_config cfg;
    struct rpc_limits lim;          /* cfg.limits with defaults filled in */
    int epfd;
    struct src wake;
    struct src listeners[2], udps[2];
    int nsock;                      /* 1 when both ports are the same */
    int port[2];
    size_t max_record[2];
    pthread_t listener;
    pthread_t *workers;
    unsigned nworkers;
    bool started;
    atomic_bool stopping;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    unsigned qidle;                 /* workers waiting on qcond (under qlock) */
    struct job *qhead, *qtail;
    atomic_size_t qlen;
    pthread_mutex_t park_lock;      /* the parked list and every job's parking fields */
    struct job *parked;             /* parked calls, oldest last */
    unsigned nparked;
    uint64_t parks, park_expired;   /* guarded by park_lock (metrics) */
    /* Published by the listener for rpc_server_get_stats. */
    atomic_uint st_open, st_busy, st_paused;
    atomic_uint_fast64_t st_accepted, st_refused;
    atomic_size_t mem;              /* receive buffers + queued calls + queued replies */
    atomic_size_t released;         /* bytes ever released from mem: progress */
    atomic_bool mem_wait;           /* the listener waits for mem to drop */
    /* Listener thread only. */
    struct conn *conns;
    unsigned nconns, nmem_paused;
    struct job *pend_head, *pend_tail;  /* one read's records, not yet queued */
    unsigned npend;
    uint8_t *scratch;               /* READ_CHUNK bytes */
    unsigned tick_ms;
    int64_t next_tick_ms, accept_resume_ms;
    size_t released_last_tick;
    struct ratelog log_record, log_accept, log_full, log_host, log_mem, log_stuck;
};

/* Timeouts (idle, reply, park, ticks) read the decision clock: a test
 * that advances it sees them pass; the poll waits computed from it are
 * never longer than real time. */
static int64_t now_ms(void)
{
    return tclock_mono_ms();
}

/* True when the warning may be logged now; then more says how many were
 * not logged since the last one ("" or "; N more in the last minute"). */
static bool ratelog_ok(struct ratelog *r, char *more, size_t len)
{
    int64_t now = now_ms();
    if (r->used && now - r->last_ms < LOG_EVERY_MS) {
        r->suppressed++;
        return false;
    }
    if (r->suppressed)
        snprintf(more, len, "; %u more in the last minute", r->suppressed);
    else
        more[0] = 0;
    r->suppressed = 0;
    r->used = true;
    r->last_ms = now;
    return true;
}

static void wake_listener(struct rpc_server *s)
{
    uint64_t one = 1;
    if (write(s->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("rpc: wake: %s", strerror(errno));
}

static void mem_add(struct rpc_server *s, size_t n)
{
    atomic_fetch_add(&s->mem, n);
}

/* Release n bytes; wakes the listener if it waits for memory and the total
 * is now under the limit. */
static void mem_sub(struct rpc_server *s, size_t n)
{
    size_t after = atomic_fetch_sub(&s->mem, n) - n;
    atomic_fetch_add(&s->released, n);
    if (after < s->lim.memory && atomic_load(&s->mem_wait) &&
        atomic_exchange(&s->mem_wait, false))
        wake_listener(s);
}

static void peer_host(const struct sockaddr_storage *ss, struct in6_addr *out)
{
    memset(out, 0, sizeof *out);
    if (ss->ss_family == AF_INET6) {
        *out = ((const struct sockaddr_in6 *)ss)->sin6_addr;
    } else if (ss->ss_family == AF_INET) {
        out->s6_addr[10] = out->s6_addr[11] = 0xff;
        memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

static void host_str(const struct in6_addr *a, char *buf, size_t len)
{
    if (IN6_IS_ADDR_V4MAPPED(a))
        inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

static void outbuf_free(struct outbuf *ob)
{
    free(ob->buf);
    free(ob->tail);
    free(ob);
}

static void conn_unref(struct conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    close(c->src.fd);
    pthread_mutex_destroy(&c->lock);
    free(c->rec);
    free(c);
}

/* Set the epoll interest from c's state: read unless a limit is reached,
 * write while replies wait.  Caller holds c->lock. */
static void conn_update_events(struct rpc_server *s, struct conn *c)
{
    if (c->dead)
        return;
    bool read = !c->broken && !c->mem_paused && c->inflight < CONN_INFLIGHT_MAX &&
                c->queued_in < s->lim.conn_buffer && c->out_bytes < s->lim.conn_buffer;
    /* While a thread is in sendmsg it rearms EPOLLOUT itself afterwards. */
    uint32_t ev = (read ? EPOLLIN | EPOLLRDHUP : 0) | (c->out_head && !c->sending ? EPOLLOUT : 0);
    if (ev == c->events)
        return;
    struct epoll_event e = { .events = ev, .data.ptr = &c->src };
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->src.fd, &e) == 0)
        c->events = ev;
}

/* Free c's queued replies (closed connection). */
static void conn_drop_output(struct rpc_server *s, struct conn *c)
{
    while (c->out_head) {
        struct outbuf *ob = c->out_head;
        c->out_head = ob->next;
        mem_sub(s, ob->len + ob->tail_len);
        outbuf_free(ob);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

/* Write queued replies with at most rounds non-blocking sendmsg calls.
 * One thread writes a connection at a time (c->sending), and c->lock is
 * not held during sendmsg, so the listener never waits for another
 * thread's copy; others only append to the queue meanwhile, and what is
 * left goes out on EPOLLOUT.  A send error marks c broken and shuts it
 * down (the listener then closes it).  Caller holds c->lock. */
static void conn_flush(struct rpc_server *s, struct conn *c, int rounds)
{
    while (rounds-- > 0 && c->out_head && !c->broken && !c->dead && !c->sending) {
        struct iovec iov[OUT_IOV_MAX];
        int n = 0;
        for (struct outbuf *ob = c->out_head; ob && n + 2 <= OUT_IOV_MAX; ob = ob->next) {
            size_t off = ob->sent;
            if (off < ob->len) {
                iov[n++] = (struct iovec){ ob->buf + off, ob->len - off };
                off = 0;
            } else {
                off -= ob->len;
            }
            if (ob->tail_len > off)
                iov[n++] = (struct iovec){ ob->tail + off, ob->tail_len - off };
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        c->sending = true;
        pthread_mutex_unlock(&c->lock);
        ssize_t w = sendmsg(c->src.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        int err = errno;
        pthread_mutex_lock(&c->lock);
        c->sending = false;
        if (c->dead) {              /* closed meanwhile: conn_close left us the queue */
            conn_drop_output(s, c);
            return;
        }
        if (w < 0 && err == EINTR)
            continue;
        if (w < 0 && (err == EAGAIN || err == EWOULDBLOCK))
            return;
        if (w <= 0) {
            c->broken = true;
            shutdown(c->src.fd, SHUT_RDWR);
            return;
        }
        int64_t now = now_ms();
        c->out_progress_ms = c->active_ms = now;
        size_t left = (size_t)w;
        while (left) {
            struct outbuf *ob = c->out_head;
            size_t rest = ob->len + ob->tail_len - ob->sent;
            if (left < rest) {
                ob->sent += left;
                break;
            }
            left -= rest;
            c->out_head = ob->next;
            if (!c->out_head)
                c->out_tail = NULL;
            size_t total = ob->len + ob->tail_len;
            c->out_bytes -= total;
            mem_sub(s, total);
            outbuf_free(ob);
        }
    }
}

/* Listener: stop reading c, drop its queued replies and our reference.
 * Workers still holding c see it dead and throw their replies away. */
static void conn_close(struct rpc_server *s, struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->dead = true;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->src.fd, NULL);
    if (!c->sending)                /* else the sender frees it when it returns */
        conn_drop_output(s, c);
    if (c->mem_paused)
        s->nmem_paused--;
    c->mem_paused = false;
    pthread_mutex_unlock(&c->lock);
    shutdown(c->src.fd, SHUT_RDWR);
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    atomic_store_explicit(&s->st_open, s->nconns, memory_order_relaxed);
    if (c->rec_cap)
        mem_sub(s, c->rec_cap);
    free(c->rec);
    c->rec = NULL;
    c->rec_len = c->rec_cap = 0;
    conn_unref(c);
}

/* Queue the n jobs head..tail (linked by next) for the workers. */
static void queue_push_list(struct rpc_server *s, struct job *head, struct job *tail, unsigned n)
{
    pthread_mutex_lock(&s->qlock);
    tail->next = NULL;
    if (s->qtail) s->qtail->next = head; else s->qhead = head;
    s->qtail = tail;
    atomic_fetch_add(&s->qlen, n);
    unsigned wake = s->qidle < n ? s->qidle : n;
    pthread_mutex_unlock(&s->qlock);
    /* Woken after the unlock, and only as many as wait: signalling under
     * the lock put the FUTEX_WAKE inside the critical section and made
     * the woken worker wait for its waker (3-8 us per call; see "What
     * bounds scaling" in doc/design.md).  A worker not yet waiting sees
     * the jobs when it checks qhead under the lock. */
    while (wake--)
        pthread_cond_signal(&s->qcond);
}

static void queue_push(struct rpc_server *s, struct job *j)
{
    queue_push_list(s, j, j, 1);
}

/* Listener: queue the records of the read just done in one push, so one
 * read's calls cost one lock and no worker is woken in mid-read (on a
 * shared core the woken worker preempted the listener per call). */
static void queue_pending(struct rpc_server *s)
{
    if (!s->npend)
        return;
    queue_push_list(s, s->pend_head, s->pend_tail, s->npend);
    s->pend_head = s->pend_tail = NULL;
    s->npend = 0;
}

/* Hand one complete record to the workers.  Returns false when c must not
 * be read any more for now (a per-connection limit is reached). */
static bool conn_submit(struct rpc_server *s, struct conn *c)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        log_error("rpc: out of memory; dropping a call");
        if (c->rec_cap)
            mem_sub(s, c->rec_cap);
        free(c->rec);
        c->rec = NULL;
        c->rec_len = c->rec_cap = 0;
        return true;
    }
    j->data = c->rec;
    j->len = c->rec_len;
    j->cap = c->rec_cap;            /* stays counted until the job is done */
    j->conn = c;
    j->peer = c->peer;
    j->peer_len = c->peer_len;
    c->rec = NULL;
    c->rec_len = c->rec_cap = 0;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_lock(&c->lock);
    c->inflight++;
    c->queued_in += j->cap;
    conn_update_events(s, c);
    bool reading = c->events & EPOLLIN;
    pthread_mutex_unlock(&c->lock);
    j->next = NULL;                 /* queued by queue_pending after the read */
    if (s->pend_tail) s->pend_tail->next = j; else s->pend_head = j;
    s->pend_tail = j;
    s->npend++;
    return reading;
}

/* Make room for want more bytes of the current fragment: the buffer grows
 * with what arrives (doubling, at least REC_MIN_ALLOC), never past what
 * the fragment announced.  False when out of memory. */
static bool rec_reserve(struct rpc_server *s, struct conn *c, size_t want)
{
    if (c->rec_cap - c->rec_len >= want)
        return true;
    size_t cap = c->rec_cap * 2;
    if (cap < REC_MIN_ALLOC)
        cap = REC_MIN_ALLOC;
    if (cap > c->rec_len + c->frag_left)
        cap = c->rec_len + c->frag_left;
    if (cap < c->rec_len + want)
        cap = c->rec_len + want;
    uint8_t *nr = realloc(c->rec, cap);
    if (!nr)
        return false;
    mem_add(s, cap - c->rec_cap);
    c->rec = nr;
    c->rec_cap = cap;
    return true;
}

/* A fragment's last byte arrived: submit the record if it was the last. */
static bool frag_done(struct rpc_server *s, struct conn *c)
{
    c->in_body = false;
    return c->frag_last ? conn_submit(s, c) : true;
}

/* Feed n bytes to the record-marking parser.  Returns false when the
 * connection must be dropped (record too large, out of memory). */
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
            if (c->rec_len + c->frag_left > c->max_record) {
                char more[64], host[INET6_ADDRSTRLEN];
                if (ratelog_ok(&s->log_record, more, sizeof more)) {
                    host_str(&c->host, host, sizeof host);
                    log_warn("rpc: record over %zu bytes from %s; dropping the connection%s",
                             c->max_record, host, more);
                }
                return false;
            }
            c->in_body = true;
            if (c->frag_left == 0) {
                frag_done(s, c);
                continue;
            }
            if (!n)
                break;
        }
        size_t take = c->frag_left < n ? c->frag_left : n;
        if (!rec_reserve(s, c, take)) {
            log_error("rpc: out of memory for a call; dropping the connection");
            return false;
        }
        memcpy(c->rec + c->rec_len, p, take);
        c->rec_len += take;
        c->frag_left -= (uint32_t)take;
        p += take;
        n -= take;
        if (c->frag_left == 0)
            frag_done(s, c);
    }
    return true;
}

/* Stop reading c until memory is released (the listener is woken then). */
static void conn_mem_pause(struct rpc_server *s, struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (!c->mem_paused) {
        c->mem_paused = true;
        s->nmem_paused++;
        conn_update_events(s, c);
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&s->mem_wait, true);
    char more[64];
    if (ratelog_ok(&s->log_mem, more, sizeof more))
        log_warn("rpc: transport memory limit (%zu MiB) reached; not reading from clients "
                 "until replies drain%s", s->lim.memory >> 20, more);
}

/* Resume the connections paused for memory, if the total is under the limit. */
static void mem_resume(struct rpc_server *s)
{
    if (!s->nmem_paused || atomic_load(&s->mem) >= s->lim.memory)
        return;
    for (struct conn *c = s->conns; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (c->mem_paused) {
            c->mem_paused = false;
            s->nmem_paused--;
            conn_update_events(s, c);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

/* Read what c has sent (up to READ_BUDGET).  Returns false when c was closed. */
static bool conn_readable(struct rpc_server *s, struct conn *c)
{
    size_t budget = READ_BUDGET;
    bool got = false, reading = true;
    while (budget && reading) {
        if (atomic_load(&s->mem) >= s->lim.memory) {
            conn_mem_pause(s, c);
            if (atomic_load(&s->mem) < s->lim.memory)
                mem_resume(s);      /* released meanwhile: no wake-up will come */
            break;
        }
        ssize_t r;
        if (c->in_body && c->rec_cap > c->rec_len) {
            /* Room left in the record buffer: read straight into it. */
            size_t room = c->rec_cap - c->rec_len;
            r = recv(c->src.fd, c->rec + c->rec_len, room < c->frag_left ? room : c->frag_left, 0);
            if (r > 0) {
                got = true;
                c->rec_len += (size_t)r;
                c->frag_left -= (uint32_t)r;
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (c->frag_left == 0)
                    reading = frag_done(s, c);
                continue;
            }
        } else {
            /* Between records, read little at a time: every record in a
             * chunk becomes a job, even past the connection's limits. */
            r = recv(c->src.fd, s->scratch, c->in_body ? READ_CHUNK : READ_SMALL, 0);
            if (r > 0) {
                got = true;
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (!conn_parse(s, c, s->scratch, (size_t)r)) {
                    conn_close(s, c);
                    return false;
                }
                pthread_mutex_lock(&c->lock);
                reading = c->events & EPOLLIN;
                pthread_mutex_unlock(&c->lock);
                continue;
            }
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r < 0 && errno == EINTR)
            continue;
        conn_close(s, c);       /* EOF or error */
        return false;
    }
    if (got) {
        pthread_mutex_lock(&c->lock);
        c->active_ms = now_ms();
        pthread_mutex_unlock(&c->lock);
    }
    return true;
}

/* c's socket can take more: write queued replies. */
static bool conn_writable(struct rpc_server *s, struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    conn_flush(s, c, LISTENER_SENDS);
    conn_update_events(s, c);
    bool broken = c->broken;
    pthread_mutex_unlock(&c->lock);
    if (broken) {
        conn_close(s, c);
        return false;
    }
    return true;
}

static void listeners_poll(struct rpc_server *s, bool on)
{
    for (int i = 0; i < s->nsock; i++) {
        struct epoll_event e = { .events = on ? EPOLLIN : 0, .data.ptr = &s->listeners[i] };
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->listeners[i].fd, &e);
    }
}

static void accept_conns(struct rpc_server *s, struct src *l)
{
    int lfd = l->fd;
    size_t max_record = s->max_record[l == &s->listeners[0] ? 0 : 1];
    char more[64];
    char host[INET6_ADDRSTRLEN];
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            /* Out of descriptors or memory: the pending connection stays
             * in the backlog and would wake us again at once, so stop
             * polling the listeners for a while. */
            listeners_poll(s, false);
            s->accept_resume_ms = now_ms() + ACCEPT_BACKOFF_MS;
            if (ratelog_ok(&s->log_accept, more, sizeof more))
                log_warn("rpc: accept: %s; not accepting connections for %d ms%s",
                         strerror(e), ACCEPT_BACKOFF_MS, more);
            return;
        }
        struct in6_addr a;
        peer_host(&peer, &a);
        if (s->nconns >= s->lim.max_conns) {
            if (ratelog_ok(&s->log_full, more, sizeof more))
                log_warn("rpc: %u connections open (max_connections); refusing more%s",
                         s->nconns, more);
            atomic_fetch_add_explicit(&s->st_refused, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        unsigned same = 0;
        for (struct conn *c = s->conns; c; c = c->next)
            same += !memcmp(&c->host, &a, sizeof a);
        if (same >= s->lim.max_conns_per_host) {
            if (ratelog_ok(&s->log_host, more, sizeof more)) {
                host_str(&a, host, sizeof host);
                log_warn("rpc: refusing a connection: %u connections from %s already "
                         "(max_connections_per_host)%s", same, host, more);
            }
            atomic_fetch_add_explicit(&s->st_refused, 1, memory_order_relaxed);
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
        pthread_mutex_init(&c->lock, NULL);
        c->peer = peer;
        c->peer_len = plen;
        c->host = a;
        c->max_record = max_record;
        c->active_ms = now_ms();
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event e = { .events = c->events, .data.ptr = &c->src };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e)) {
            conn_unref(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        atomic_fetch_add_explicit(&s->st_accepted, 1, memory_order_relaxed);
        atomic_store_explicit(&s->st_open, s->nconns, memory_order_relaxed);
    }
}

static void udp_readable(struct rpc_server *s, int fd)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t r = recvfrom(fd, s->scratch, RPC_UDP_MAX, 0, (struct sockaddr *)&peer, &plen);
        if (r < 0)
            return;
        /* Full queue or over the memory limit: drop (UDP clients retry). */
        if (atomic_load(&s->qlen) > QUEUE_UDP_MAX || atomic_load(&s->mem) >= s->lim.memory)
            continue;
        struct job *j = calloc(1, sizeof *j);
        uint8_t *buf = malloc(r ? (size_t)r : 1);
        if (!j || !buf) {
            free(j);
            free(buf);
            continue;
        }
        memcpy(buf, s->scratch, (size_t)r);
        j->data = buf;
        j->len = j->cap = (size_t)r;
        j->udp_fd = fd;
        j->peer = peer;
        j->peer_len = plen;
        mem_add(s, j->cap);
        queue_push(s, j);
    }
}

/* Over the memory limit with nothing released since the last tick: drop the
 * connections holding the most (receive buffer + queued replies) until
 * three quarters of the limit, so new clients are read again. */
static void mem_reclaim(struct rpc_server *s)
{
    while (atomic_load(&s->mem) > s->lim.memory / 4 * 3) {
        struct conn *worst = NULL;
        size_t most = 0;
        for (struct conn *c = s->conns; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            size_t held = c->rec_cap + c->out_bytes;
            pthread_mutex_unlock(&c->lock);
            if (held > most) {
                most = held;
                worst = c;
            }
        }
        if (!worst)
            return;
        char more[64];
        if (ratelog_ok(&s->log_mem, more, sizeof more)) {
            char host[INET6_ADDRSTRLEN];
            host_str(&worst->host, host, sizeof host);
            log_warn("rpc: over the transport memory limit with no progress; dropping a "
                     "connection from %s holding %zu KiB%s", host, most >> 10, more);
        }
        conn_close(s, worst);
    }
}

static void parked_expire(struct rpc_server *s);

/* Periodic work: listener back-off, stuck and idle connections, memory,
 * parked calls past park_timeout. */
static void tick(struct rpc_server *s)
{
    int64_t now = now_ms();
    if (s->accept_resume_ms && now >= s->accept_resume_ms) {
        s->accept_resume_ms = 0;
        listeners_poll(s, true);
    }
    unsigned busy = 0, paused = 0;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        pthread_mutex_lock(&c->lock);
        if (c->mem_paused)
            paused++;
        else if (c->out_head || c->inflight || c->parked)
            busy++;
        bool stuck = c->out_head && now - c->out_progress_ms > s->lim.reply_timeout_ms;
        bool idle = !c->out_head && c->inflight == 0 && c->parked == 0 &&
                    s->lim.idle_timeout_ms != UINT32_MAX &&
                    now - c->active_ms > s->lim.idle_timeout_ms;
        size_t queued = c->out_bytes;
        pthread_mutex_unlock(&c->lock);
        char host[INET6_ADDRSTRLEN];
        if (stuck) {
            char more[64];
            if (ratelog_ok(&s->log_stuck, more, sizeof more)) {
                host_str(&c->host, host, sizeof host);
                log_warn("rpc: a client at %s did not read its replies for %u ms (%zu bytes "
                         "waiting); dropping the connection%s", host, s->lim.reply_timeout_ms,
                         queued, more);
            }
            conn_close(s, c);
        } else if (idle) {
            host_str(&c->host, host, sizeof host);
            log_debug("rpc: closing a connection from %s idle for %u ms", host,
                      s->lim.idle_timeout_ms);
            conn_close(s, c);
        }
    }
    size_t released = atomic_load(&s->released);
    if (atomic_load(&s->mem) >= s->lim.memory && s->nmem_paused &&
        released == s->released_last_tick)
        mem_reclaim(s);
    s->released_last_tick = atomic_load(&s->released);
    mem_resume(s);
    parked_expire(s);
    atomic_store_explicit(&s->st_open, s->nconns, memory_order_relaxed);
    atomic_store_explicit(&s->st_busy, busy, memory_order_relaxed);
    atomic_store_explicit(&s->st_paused, paused, memory_order_relaxed);
}

void rpc_server_get_stats(struct rpc_server *s, struct rpc_server_stats *st)
{
    memset(st, 0, sizeof *st);
    st->conns_open = atomic_load_explicit(&s->st_open, memory_order_relaxed);
    st->conns_busy = atomic_load_explicit(&s->st_busy, memory_order_relaxed);
    st->conns_paused = atomic_load_explicit(&s->st_paused, memory_order_relaxed);
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

static void *listener_main(void *arg)
{
    struct rpc_server *s = arg;
    struct epoll_event ev[64];
    pthread_setname_np(pthread_self(), "nfsd-listener");
    s->next_tick_ms = now_ms() + s->tick_ms;
    while (!atomic_load(&s->stopping)) {
        int64_t wait = s->next_tick_ms - now_ms();
        if (s->accept_resume_ms && s->accept_resume_ms - now_ms() < wait)
            wait = s->accept_resume_ms - now_ms();
        int n = epoll_wait(s->epfd, ev, 64, wait < 0 ? 0 : (int)wait);
        if (n < 0 && errno != EINTR) {
            log_error("rpc: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct src *src = ev[i].data.ptr;
            switch (src->kind) {
            case SRC_WAKE: {
                uint64_t v;
                if (read(src->fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("rpc: wake: %s", strerror(errno));
                mem_resume(s);
                break;
            }
            case SRC_TCP_LISTEN:
                accept_conns(s, src);
                break;
            case SRC_UDP:
                udp_readable(s, src->fd);
                break;
            case SRC_CONN: {
                /* Connections are closed here only while handling their
                 * own event, so later events of this batch stay valid. */
                struct conn *c = (struct conn *)src;
                uint32_t e = ev[i].events;
                if ((e & EPOLLOUT) && !conn_writable(s, c))
                    break;
                if (e & EPOLLIN) {
                    conn_readable(s, c);
                    queue_pending(s);
                } else if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
                    conn_close(s, c);
                }
                break;
            }
            }
        }
        int64_t now = now_ms();
        if (now >= s->next_tick_ms || (s->accept_resume_ms && now >= s->accept_resume_ms)) {
            tick(s);
            if (now >= s->next_tick_ms)
                s->next_tick_ms = now + s->tick_ms;
        }
    }
    while (s->conns)
        conn_close(s, s->conns);
    return NULL;
}

/* A worker's reply to a TCP call: queued on the connection and written as
 * far as the socket takes it now; the rest goes out from the event loop. */
static void conn_reply(struct rpc_server *s, struct job *j, struct rpc_reply_out *reply)
{
    struct conn *c = j->conn;
    struct outbuf *ob = NULL;
    if (reply->buf) {
        uint32_t mark = 0x80000000u | (uint32_t)(reply->len + reply->tail_len);
        reply->buf[0] = (uint8_t)(mark >> 24);
        reply->buf[1] = (uint8_t)(mark >> 16);
        reply->buf[2] = (uint8_t)(mark >> 8);
        reply->buf[3] = (uint8_t)mark;
        ob = calloc(1, sizeof *ob);
        if (ob) {
            ob->buf = reply->buf;
            ob->len = reply->len + RPC_REPLY_HEADROOM;
            ob->tail = reply->tail;
            ob->tail_len = reply->tail ? reply->tail_len : 0;
        } else {
            log_error("rpc: out of memory; dropping a reply");
            free(reply->buf);
            free(reply->tail);
        }
    }
    pthread_mutex_lock(&c->lock);
    if (ob && !c->dead && !c->broken) {
        size_t total = ob->len + ob->tail_len;
        if (!c->out_head)
            c->out_progress_ms = now_ms();
        if (c->out_tail) c->out_tail->next = ob; else c->out_head = ob;
        c->out_tail = ob;
        c->out_bytes += total;
        mem_add(s, total);
        ob = NULL;
        conn_flush(s, c, WORKER_SENDS);  /* until EAGAIN; the rest goes out on EPOLLOUT */
    }
    c->inflight--;
    c->queued_in -= j->cap;
    conn_update_events(s, c);
    pthread_mutex_unlock(&c->lock);
    if (ob)
        outbuf_free(ob);
}

/* A call of c parks (true) or comes back to the work queue (false): a
 * parked call does not count against CONN_INFLIGHT_MAX, so the client's
 * other calls are still read. */
static void conn_park_count(struct rpc_server *s, struct conn *c, bool parking)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->inflight += parking ? -1 : 1;
    c->parked += parking ? 1 : -1;
    conn_update_events(s, c);
    pthread_mutex_unlock(&c->lock);
}

static void job_free(struct rpc_server *s, struct job *j)
{
    if (j->conn)
        conn_unref(j->conn);
    mem_sub(s, j->cap);
    free(j->data);
    free(j);
}

static void parked_unlink_locked(struct rpc_server *s, struct job *j)
{
    if (j->pprev) j->pprev->pnext = j->pnext; else s->parked = j->pnext;
    if (j->pnext) j->pnext->pprev = j->pprev;
    j->pprev = j->pnext = NULL;
    s->nparked--;
}

void rpc_call_resume(void *park_token, int err)
{
    struct job *j = park_token;
    struct rpc_server *s = j->srv;
    pthread_mutex_lock(&s->park_lock);
    j->wake_err = err;
    j->waiting = false;
    if (j->in_handler) {            /* the worker that parked it requeues it */
        j->resumed = true;
        pthread_mutex_unlock(&s->park_lock);
        return;
    }
    if (j->expired) {
        /* Answered "retry later" already: free it; or that answer is still
         * queued, and its worker frees it after (waiting is false now). */
        bool answered = j->answered;
        pthread_mutex_unlock(&s->park_lock);
        if (answered)
            job_free(s, j);
        return;
    }
    parked_unlink_locked(s, j);
    pthread_mutex_unlock(&s->park_lock);
    conn_park_count(s, j->conn, false);
    queue_push(s, j);
}

/* Listener tick: calls parked past park_timeout go back to the workers to
 * be answered "retry later"; their resume is still owed (and frees them). */
static void parked_expire(struct rpc_server *s)
{
    int64_t now = now_ms();
    struct job *due = NULL;
    pthread_mutex_lock(&s->park_lock);
    for (struct job *j = s->parked, *next; j; j = next) {
        next = j->pnext;
        if (now - j->parked_ms < (int64_t)s->lim.park_timeout_ms)
            continue;
        parked_unlink_locked(s, j);
        j->expired = true;
        s->park_expired++;
        j->next = due;
        due = j;
    }
    pthread_mutex_unlock(&s->park_lock);
    while (due) {
        struct job *j = due;
        due = j->next;
        conn_park_count(s, j->conn, false);
        queue_push(s, j);
    }
}

static void run_job(struct rpc_server *s, struct job *j)
{
    pthread_mutex_lock(&s->park_lock);
    j->srv = s;
    j->in_handler = true;
    j->resumed = false;
    bool expired = j->expired;
    struct rpc_call_in call = {
        .data = j->data, .len = j->len,
        .peer = (const struct sockaddr *)&j->peer, .peer_len = j->peer_len,
        .is_tcp = j->conn != NULL,
        .max_reply = j->conn ? RPC_MAX_RECORD : RPC_UDP_MAX_REPLY,
        .park_token = expired ? NULL : j,
        .may_park = s->nparked < s->lim.max_parked,     /* and per connection, below */
        .wake_err = j->wake_err,
        .expired = expired,
        .parked_ms = j->parked_ms,
    };
    pthread_mutex_unlock(&s->park_lock);
    if (j->conn && call.may_park) {
        pthread_mutex_lock(&j->conn->lock);
        call.may_park = j->conn->parked < CONN_PARKED_MAX;
        pthread_mutex_unlock(&j->conn->lock);
    }
    struct rpc_reply_out reply = { 0 };
    s->cfg.handler(s->cfg.ctx, &call, &reply);
    if (reply.parked && !expired) {
        pthread_mutex_lock(&s->park_lock);
        j->in_handler = false;
        if (j->resumed) {           /* the data came while we were at it */
            pthread_mutex_unlock(&s->park_lock);
            queue_push(s, j);
            return;
        }
        j->waiting = true;
        if (!j->parked_ms)
            j->parked_ms = now_ms();
        j->pprev = NULL;
        j->pnext = s->parked;
        if (s->parked)
            s->parked->pprev = j;
        s->parked = j;
        s->nparked++;
        s->parks++;
        /* Counted as parked before the lock is dropped: a resume that
         * follows at once counts it back. */
        conn_park_count(s, j->conn, true);
        pthread_mutex_unlock(&s->park_lock);
        return;
    }
    if (j->conn) {
        conn_reply(s, j, &reply);
    } else {
        if (reply.buf && reply.len + reply.tail_len > RPC_UDP_MAX_REPLY) {
            log_debug("rpc: a %zu-byte UDP reply is over %d bytes; not sent",
                      reply.len + reply.tail_len, RPC_UDP_MAX_REPLY);
        } else if (reply.buf) {
            struct iovec iov[2] = {
                { reply.buf + RPC_REPLY_HEADROOM, reply.len },
                { reply.tail, reply.tail_len },
            };
            struct msghdr mh = { .msg_name = &j->peer, .msg_namelen = j->peer_len,
                                 .msg_iov = iov, .msg_iovlen = reply.tail ? 2 : 1 };
            sendmsg(j->udp_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        free(reply.buf);
        free(reply.tail);
    }
    pthread_mutex_lock(&s->park_lock);
    j->in_handler = false;
    /* Answered by park_timeout while its resume is still owed: the resume
     * frees it (the connection reference and memory stay counted). */
    bool keep = expired && j->waiting;
    j->answered = keep;
    pthread_mutex_unlock(&s->park_lock);
    if (!keep)
        job_free(s, j);
}

static void *worker_main(void *arg)
{
    struct rpc_server *s = arg;
    pthread_setname_np(pthread_self(), "nfsd-worker");    /* top -H, perf --per-thread */
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !atomic_load(&s->stopping)) {
            s->qidle++;
            pthread_cond_wait(&s->qcond, &s->qlock);
            s->qidle--;
        }
        if (atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->qlock);
            return NULL;
        }
        struct job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        atomic_fetch_sub(&s->qlen, 1);
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
    s->epfd = -1;
    s->wake.fd = -1;
    for (int i = 0; i < 2; i++)
        s->listeners[i].fd = s->udps[i].fd = -1;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->park_lock, NULL);
    atomic_init(&s->stopping, false);
    atomic_init(&s->qlen, 0);
    atomic_init(&s->mem, 0);
    atomic_init(&s->released, 0);
    atomic_init(&s->mem_wait, false);
    int ret = ENOMEM;
    s->scratch = malloc(READ_CHUNK);
    if (!s->scratch)
        goto fail;
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
            (s->udps[i].fd >= 0 && (ret = epoll_add(s->epfd, &s->udps[i]))))
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
    if (s->wake.fd >= 0)
        wake_listener(s);
    if (s->started)
        pthread_join(s->listener, NULL);
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
        job_free(s, j);
    }
    while (s->parked) {
        struct job *j = s->parked;
        s->parked = j->pnext;
        log_warn("rpc: a parked call was never resumed");
        job_free(s, j);
    }
    for (int i = 0; i < 2; i++) {
        if (s->listeners[i].fd >= 0) close(s->listeners[i].fd);
        if (s->udps[i].fd >= 0) close(s->udps[i].fd);
    }
    if (s->wake.fd >= 0) close(s->wake.fd);
    if (s->epfd >= 0) close(s->epfd);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->park_lock);
    free(s->scratch);
    free(s);
}
