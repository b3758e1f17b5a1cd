/* rpc_listener.c: the transport event loops: accept (loop 0) and hand-off of connections to loops, TCP record-marking reassembly, UDP receive, queued replies written when a socket is writable, memory and connection limits, timeouts. */
#include "nfsd/rpc_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/log.h"

/* True when the warning may be logged now; then more says how many were
 * not logged since the last one ("" or "; N more in the last minute"). */
static bool ratelog_ok(struct rpc_server *s, struct ratelog *r, char *more, size_t len)
{
    int64_t now = now_ms();
    bool ok = false;
    pthread_mutex_lock(&s->log_lock);
    if (r->used && now - r->last_ms < LOG_EVERY_MS) {
        r->suppressed++;
    } else {
        if (r->suppressed)
            snprintf(more, len, "; %u more in the last minute", r->suppressed);
        else
            more[0] = 0;
        r->suppressed = 0;
        r->used = true;
        r->last_ms = now;
        ok = true;
    }
    pthread_mutex_unlock(&s->log_lock);
    return ok;
}

void rpc_wake_loop(struct loop *l)
{
    uint64_t one = 1;
    if (write(l->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("rpc: wake: %s", strerror(errno));
}

/* Release n bytes; if a loop waits for memory and the total is now under
 * the limit, wake every loop (each resumes the connections it paused). */
void rpc_mem_sub(struct rpc_server *s, size_t n)
{
    size_t after = atomic_fetch_sub(&s->mem, n) - n;
    atomic_fetch_add(&s->released, n);
    if (after < s->lim.memory && atomic_load(&s->mem_wait) &&
        atomic_exchange(&s->mem_wait, false))
        for (unsigned i = 0; i < s->nloops; i++)
            rpc_wake_loop(&s->loops[i]);
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

void rpc_outbuf_free(struct outbuf *ob)
{
    free(ob->buf);
    free(ob->tail);
    free(ob);
}

void rpc_conn_unref(struct conn *c)
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
void rpc_conn_update_events(struct rpc_server *s, struct conn *c)
{
    if (c->dead)
        return;
    bool read = !c->broken && !c->mem_paused && c->inflight < CONN_INFLIGHT_MAX && !c->held_head &&
                c->queued_in < s->lim.conn_buffer && c->out_bytes < s->lim.conn_buffer;
    /* While a thread is in sendmsg it rearms EPOLLOUT itself afterwards. */
    uint32_t ev = (read ? EPOLLIN | EPOLLRDHUP : 0) | (c->out_head && !c->sending ? EPOLLOUT : 0);
    if (ev == c->events)
        return;
    struct epoll_event e = { .events = ev, .data.ptr = &c->src };
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->src.fd, &e) == 0)
        c->events = ev;
}

/* Free c's queued replies (closed connection). */
static void conn_drop_output(struct rpc_server *s, struct conn *c)
{
    while (c->out_head) {
        struct outbuf *ob = c->out_head;
        c->out_head = ob->next;
        rpc_mem_sub(s, ob->len + ob->tail_len);
        rpc_outbuf_free(ob);
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
void rpc_conn_flush(struct rpc_server *s, struct conn *c, int rounds)
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
            rpc_mem_sub(s, total);
            rpc_outbuf_free(ob);
        }
    }
}

/* Count one more connection from host a, if max_connections and
 * max_connections_per_host allow it.  Returns 0, or 1 (all full: *same is
 * the total) or 2 (a's are: *same is a's count). */
static int conns_take(struct rpc_server *s, const struct in6_addr *a, unsigned *same)
{
    int ret = 0;
    pthread_mutex_lock(&s->conn_lock);
    struct hostcount *h = NULL;
    for (size_t i = 0; i < s->nhosts && !h; i++)
        if (!memcmp(&s->hosts[i].host, a, sizeof *a))
            h = &s->hosts[i];
    if (s->nconns >= s->lim.max_conns) {
        *same = s->nconns;
        ret = 1;
    } else if (h && h->n >= s->lim.max_conns_per_host) {
        *same = h->n;
        ret = 2;
    } else if (!h && s->nhosts == s->hosts_cap) {
        size_t cap = s->hosts_cap ? s->hosts_cap * 2 : 16;
        struct hostcount *nh = realloc(s->hosts, cap * sizeof *nh);
        if (!nh) {
            *same = s->nconns;
            ret = 1;
        } else {
            s->hosts = nh;
            s->hosts_cap = cap;
        }
    }
    if (!ret) {
        if (!h) {
            h = &s->hosts[s->nhosts++];
            h->host = *a;
            h->n = 0;
        }
        h->n++;
        s->nconns++;
        atomic_store_explicit(&s->st_open, s->nconns, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->conn_lock);
    return ret;
}

/* Uncount a connection from host a (closed, or never registered). */
static void conns_release(struct rpc_server *s, const struct in6_addr *a)
{
    pthread_mutex_lock(&s->conn_lock);
    for (size_t i = 0; i < s->nhosts; i++) {
        if (memcmp(&s->hosts[i].host, a, sizeof *a))
            continue;
        if (--s->hosts[i].n == 0)
            s->hosts[i] = s->hosts[--s->nhosts];
        break;
    }
    s->nconns--;
    atomic_store_explicit(&s->st_open, s->nconns, memory_order_relaxed);
    pthread_mutex_unlock(&s->conn_lock);
}

/* c's loop: stop reading c, drop its queued replies and our reference.
 * Workers still holding c see it dead and throw their replies away. */
static void conn_close(struct loop *l, struct conn *c)
{
    struct rpc_server *s = l->srv;
    pthread_mutex_lock(&c->lock);
    c->dead = true;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->src.fd, NULL);
    if (!c->sending)                /* else the sender frees it when it returns */
        conn_drop_output(s, c);
    if (c->mem_paused)
        l->nmem_paused--;
    c->mem_paused = false;
    struct job *held = c->held_head;
    c->held_head = c->held_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (held) {                  /* never run: c's reference is not the last */
        struct job *j = held;
        held = j->next;
        rpc_job_free(s, j);
    }
    shutdown(c->src.fd, SHUT_RDWR);
    if (c->prev) c->prev->next = c->next; else l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    l->nconns--;
    atomic_fetch_sub(&l->assigned, 1);
    conns_release(s, &c->host);
    if (c->rec_cap)
        rpc_mem_sub(s, c->rec_cap);
    free(c->rec);
    c->rec = NULL;
    c->rec_len = c->rec_cap = 0;
    rpc_conn_unref(c);
}
/* Queue the records of the read just done in one push, so one read's
 * calls cost one lock and no worker is woken in mid-read (on a shared
 * core the woken worker preempted the loop per call). */
static void queue_pending(struct loop *l)
{
    if (!l->npend)
        return;
    rpc_queue_push_list(l->srv, l->pend_head, l->pend_tail, l->npend);
    l->pend_head = l->pend_tail = NULL;
    l->npend = 0;
}

/* Hand one complete record to the workers, or hold it while c may run no
 * more calls (rpc_conn_may_run: one read can bring many records); a held
 * call is queued when one of c's calls finishes or its replies drain.  Returns
 * false when c must not be read any more for now (a per-connection limit
 * is reached, or a call is held). */
static bool conn_submit(struct loop *l, struct conn *c)
{
    struct rpc_server *s = l->srv;
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        log_error("rpc: out of memory; dropping a call");
        if (c->rec_cap)
            rpc_mem_sub(s, c->rec_cap);
        free(c->rec);
        c->rec = NULL;
        c->rec_len = c->rec_cap = 0;
        return true;
    }
    /* The job itself counts too: a client sending tiny records must not
     * make the server hold many jobs for few bytes. */
    mem_add(s, sizeof *j);
    j->data = c->rec;
    j->len = c->rec_len;
    j->cap = c->rec_cap + sizeof *j;    /* stays counted until the job is done */
    j->conn = c;
    j->peer = c->peer;
    j->peer_len = c->peer_len;
    j->next = NULL;
    c->rec = NULL;
    c->rec_len = c->rec_cap = 0;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_lock(&c->lock);
    bool run = !c->held_head && rpc_conn_may_run(s, c);
    if (run) {
        c->inflight++;
    } else {
        if (c->held_tail) c->held_tail->next = j; else c->held_head = j;
        c->held_tail = j;
    }
    c->queued_in += j->cap;
    rpc_conn_update_events(s, c);
    bool reading = c->events & EPOLLIN;
    pthread_mutex_unlock(&c->lock);
    if (run) {                      /* queued by queue_pending after the read */
        if (l->pend_tail) l->pend_tail->next = j; else l->pend_head = j;
        l->pend_tail = j;
        l->npend++;
    }
    return reading;
}

/* Make room for want more bytes of the current fragment: the buffer grows
 * with what arrives (doubling, at least REC_MIN_ALLOC), never past what
 * the fragment announced.  False when out of memory (logged; the caller
 * drops the connection). */
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
    if (!nr) {
        log_error("rpc: out of memory for a call; dropping the connection");
        return false;
    }
    mem_add(s, cap - c->rec_cap);
    c->rec = nr;
    c->rec_cap = cap;
    return true;
}

/* A fragment's last byte arrived: submit the record if it was the last. */
static bool frag_done(struct loop *l, struct conn *c)
{
    c->in_body = false;
    return c->frag_last ? conn_submit(l, c) : true;
}

/* Feed n bytes to the record-marking parser.  Returns false when the
 * connection must be dropped (record too large, out of memory). */
static bool conn_parse(struct loop *l, struct conn *c, const uint8_t *p, size_t n)
{
    struct rpc_server *s = l->srv;
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
                if (ratelog_ok(s, &s->log_record, more, sizeof more)) {
                    host_str(&c->host, host, sizeof host);
                    log_warn("rpc: record over %zu bytes from %s; dropping the connection%s",
                             c->max_record, host, more);
                }
                return false;
            }
            c->in_body = true;
            if (c->frag_left == 0) {
                frag_done(l, c);
                continue;
            }
            if (!n)
                break;
        }
        size_t take = c->frag_left < n ? c->frag_left : n;
        if (!rec_reserve(s, c, take))
            return false;
        memcpy(c->rec + c->rec_len, p, take);
        c->rec_len += take;
        c->frag_left -= (uint32_t)take;
        p += take;
        n -= take;
        if (c->frag_left == 0)
            frag_done(l, c);
    }
    return true;
}

/* Stop reading c until memory is released (every loop is woken then). */
static void conn_mem_pause(struct loop *l, struct conn *c)
{
    struct rpc_server *s = l->srv;
    pthread_mutex_lock(&c->lock);
    if (!c->mem_paused) {
        c->mem_paused = true;
        l->nmem_paused++;
        rpc_conn_update_events(s, c);
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&s->mem_wait, true);
    char more[64];
    if (ratelog_ok(s, &s->log_mem, more, sizeof more))
        log_warn("rpc: transport memory limit (%zu MiB) reached; not reading from clients "
                 "until replies drain%s", s->lim.memory >> 20, more);
}

/* Resume l's connections paused for memory, if the total is under the limit. */
static void mem_resume(struct loop *l)
{
    struct rpc_server *s = l->srv;
    if (!l->nmem_paused || atomic_load(&s->mem) >= s->lim.memory)
        return;
    for (struct conn *c = l->conns; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (c->mem_paused) {
            c->mem_paused = false;
            l->nmem_paused--;
            rpc_conn_update_events(s, c);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

/* Read what c has sent (up to READ_BUDGET).  Returns false when c was closed. */
static bool conn_readable(struct loop *l, struct conn *c)
{
    struct rpc_server *s = l->srv;
    size_t budget = READ_BUDGET;
    bool got = false, reading = true;
    while (budget && reading) {
        if (atomic_load(&s->mem) >= s->lim.memory) {
            conn_mem_pause(l, c);
            if (atomic_load(&s->mem) < s->lim.memory)
                mem_resume(l);      /* released meanwhile: no wake-up will come */
            break;
        }
        ssize_t r;
        /* Inside a record: its bytes go straight into its buffer, grown
         * only now that bytes are there to read, and never past the
         * fragment, so one read never brings more records than the one
         * being completed and those a READ_SMALL read holds. */
        if (c->in_body && c->rec_cap == c->rec_len &&
            !rec_reserve(s, c, c->frag_left < REC_MIN_ALLOC ? c->frag_left : REC_MIN_ALLOC)) {
            conn_close(l, c);
            return false;
        }
        if (c->in_body) {
            size_t room = c->rec_cap - c->rec_len;
            r = recv(c->src.fd, c->rec + c->rec_len, room < c->frag_left ? room : c->frag_left, 0);
            if (r > 0) {
                got = true;
                c->rec_len += (size_t)r;
                c->frag_left -= (uint32_t)r;
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (c->frag_left == 0)
                    reading = frag_done(l, c);
                continue;
            }
        } else {
            /* Between records, read little at a time: every record in the
             * chunk becomes a job (held past the connection's limit). */
            r = recv(c->src.fd, l->scratch, READ_SMALL, 0);
            if (r > 0) {
                got = true;
                budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
                if (!conn_parse(l, c, l->scratch, (size_t)r)) {
                    conn_close(l, c);
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
        conn_close(l, c);       /* EOF or error */
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
static bool conn_writable(struct loop *l, struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    rpc_conn_flush(l->srv, c, LISTENER_SENDS);
    struct job *hh, *ht;
    unsigned nh = rpc_conn_take_held(l->srv, c, &hh, &ht);    /* replies drained */
    rpc_conn_update_events(l->srv, c);
    bool broken = c->broken;
    pthread_mutex_unlock(&c->lock);
    if (nh)
        rpc_queue_push_list(l->srv, hh, ht, nh);
    if (broken) {
        conn_close(l, c);
        return false;
    }
    return true;
}

static void listeners_poll(struct rpc_server *s, bool on)
{
    for (int i = 0; i < s->nsock; i++) {
        struct epoll_event e = { .events = on ? EPOLLIN : 0, .data.ptr = &s->listeners[i] };
        epoll_ctl(s->loops[0].epfd, EPOLL_CTL_MOD, s->listeners[i].fd, &e);
    }
}

/* Register c on its loop l (l's thread): epoll interest and l's list.
 * False (c uncounted and freed) when epoll refuses it. */
static bool conn_adopt(struct loop *l, struct conn *c)
{
    struct epoll_event e = { .events = c->events, .data.ptr = &c->src };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->src.fd, &e)) {
        atomic_fetch_sub(&l->assigned, 1);
        conns_release(l->srv, &c->host);
        rpc_conn_unref(c);
        return false;
    }
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    return true;
}

/* Take the connections loop 0 handed to l. */
static void adopt_handoffs(struct loop *l)
{
    pthread_mutex_lock(&l->hand_lock);
    struct conn *c = l->hand_head;
    l->hand_head = NULL;
    pthread_mutex_unlock(&l->hand_lock);
    while (c) {
        struct conn *next = c->next;
        conn_adopt(l, c);
        c = next;
    }
}

/* The loop a new connection goes to: the one with the fewest (the lowest
 * number of those). */
static struct loop *pick_loop(struct rpc_server *s)
{
    struct loop *best = &s->loops[0];
    unsigned least = atomic_load(&best->assigned);
    for (unsigned i = 1; i < s->nloops && least; i++) {
        unsigned n = atomic_load(&s->loops[i].assigned);
        if (n < least) {
            least = n;
            best = &s->loops[i];
        }
    }
    return best;
}

/* Loop 0: accept what the listening socket l has, within the connection
 * limits, and give each connection to a loop. */
static void accept_conns(struct loop *l0, struct src *lsrc)
{
    struct rpc_server *s = l0->srv;
    int lfd = lsrc->fd;
    size_t max_record = s->max_record[lsrc == &s->listeners[0] ? 0 : 1];
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
            if (ratelog_ok(s, &s->log_accept, more, sizeof more))
                log_warn("rpc: accept: %s; not accepting connections for %d ms%s",
                         strerror(e), ACCEPT_BACKOFF_MS, more);
            return;
        }
        struct in6_addr a;
        peer_host(&peer, &a);
        unsigned same = 0;
        int full = conns_take(s, &a, &same);
        if (full == 1) {
            if (ratelog_ok(s, &s->log_full, more, sizeof more))
                log_warn("rpc: %u connections open (max_connections); refusing more%s",
                         same, more);
            atomic_fetch_add_explicit(&s->st_refused, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        if (full == 2) {
            if (ratelog_ok(s, &s->log_host, more, sizeof more)) {
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
            conns_release(s, &a);
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
        struct loop *to = pick_loop(s);
        c->loop = to;
        atomic_fetch_add(&to->assigned, 1);
        atomic_fetch_add_explicit(&s->st_accepted, 1, memory_order_relaxed);
        if (to == l0) {
            conn_adopt(l0, c);
            continue;
        }
        /* The owner registers it: its list is its thread's alone. */
        pthread_mutex_lock(&to->hand_lock);
        c->next = to->hand_head;
        to->hand_head = c;
        pthread_mutex_unlock(&to->hand_lock);
        rpc_wake_loop(to);
    }
}

static void udp_readable(struct loop *l, int fd)
{
    struct rpc_server *s = l->srv;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t r = recvfrom(fd, l->scratch, RPC_UDP_MAX, 0, (struct sockaddr *)&peer, &plen);
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
        memcpy(buf, l->scratch, (size_t)r);
        j->data = buf;
        j->len = j->cap = (size_t)r;
        j->udp_fd = fd;
        j->peer = peer;
        j->peer_len = plen;
        mem_add(s, j->cap);
        rpc_queue_push(s, j);
    }
}

/* Over the memory limit with nothing released since l's last tick: drop l's
 * connections holding the most (receive buffer + queued replies) until
 * three quarters of the limit, so new clients are read again.  With
 * several loops, a loop holding no more than its share of that (3/4 of
 * the limit / loops) drops nothing: the others hold the excess. */
static void mem_reclaim(struct loop *l)
{
    struct rpc_server *s = l->srv;
    size_t share = s->lim.memory / 4 * 3 / s->nloops;
    while (atomic_load(&s->mem) > s->lim.memory / 4 * 3) {
        struct conn *worst = NULL;
        size_t most = 0, held_all = 0;
        for (struct conn *c = l->conns; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            size_t held = c->rec_cap + c->out_bytes;
            pthread_mutex_unlock(&c->lock);
            held_all += held;
            if (held > most) {
                most = held;
                worst = c;
            }
        }
        if (!worst || (s->nloops > 1 && held_all <= share))
            return;
        char more[64];
        if (ratelog_ok(s, &s->log_mem, more, sizeof more)) {
            char host[INET6_ADDRSTRLEN];
            host_str(&worst->host, host, sizeof host);
            log_warn("rpc: over the transport memory limit with no progress; dropping a "
                     "connection from %s holding %zu KiB%s", host, most >> 10, more);
        }
        conn_close(l, worst);
    }
}

/* Periodic work: stuck and idle connections of l, memory; on loop 0 also
 * the listener back-off and parked calls past park_timeout. */
static void tick(struct loop *l)
{
    struct rpc_server *s = l->srv;
    int64_t now = now_ms();
    if (l->idx == 0 && s->accept_resume_ms && now >= s->accept_resume_ms) {
        s->accept_resume_ms = 0;
        listeners_poll(s, true);
    }
    unsigned busy = 0, paused = 0;
    for (struct conn *c = l->conns, *next; c; c = next) {
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
            if (ratelog_ok(s, &s->log_stuck, more, sizeof more)) {
                host_str(&c->host, host, sizeof host);
                log_warn("rpc: a client at %s did not read its replies for %u ms (%zu bytes "
                         "waiting); dropping the connection%s", host, s->lim.reply_timeout_ms,
                         queued, more);
            }
            conn_close(l, c);
        } else if (idle) {
            host_str(&c->host, host, sizeof host);
            log_debug("rpc: closing a connection from %s idle for %u ms", host,
                      s->lim.idle_timeout_ms);
            conn_close(l, c);
        }
    }
    size_t released = atomic_load(&s->released);
    if (atomic_load(&s->mem) >= s->lim.memory && l->nmem_paused &&
        released == l->released_last_tick)
        mem_reclaim(l);
    l->released_last_tick = atomic_load(&s->released);
    mem_resume(l);
    if (l->idx == 0)
        rpc_parked_expire(s);
    atomic_store_explicit(&l->st_busy, busy, memory_order_relaxed);
    atomic_store_explicit(&l->st_paused, paused, memory_order_relaxed);
}

void *rpc_listener_main(void *arg)
{
    struct loop *l = arg;
    struct rpc_server *s = l->srv;
    struct epoll_event ev[64];
    pthread_setname_np(pthread_self(), "nfsd-listener");   /* every loop: top -H, bench/scale */
    l->next_tick_ms = now_ms() + s->tick_ms;
    while (!atomic_load(&l->quit)) {
        int64_t wait = l->next_tick_ms - now_ms();
        if (l->idx == 0 && s->accept_resume_ms && s->accept_resume_ms - now_ms() < wait)
            wait = s->accept_resume_ms - now_ms();
        int n = epoll_wait(l->epfd, ev, 64, wait < 0 ? 0 : (int)wait);
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
                adopt_handoffs(l);
                mem_resume(l);
                break;
            }
            case SRC_TCP_LISTEN:
                accept_conns(l, src);
                break;
            case SRC_UDP:
                udp_readable(l, src->fd);
                break;
            case SRC_CONN: {
                /* Connections are closed here only while handling their
                 * own event, so later events of this batch stay valid. */
                struct conn *c = (struct conn *)src;
                uint32_t e = ev[i].events;
                if ((e & EPOLLOUT) && !conn_writable(l, c))
                    break;
                if (e & EPOLLIN) {
                    conn_readable(l, c);
                    queue_pending(l);
                } else if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
                    conn_close(l, c);
                }
                break;
            }
            }
        }
        int64_t now = now_ms();
        if (now >= l->next_tick_ms ||
            (l->idx == 0 && s->accept_resume_ms && now >= s->accept_resume_ms)) {
            tick(l);
            if (now >= l->next_tick_ms)
                l->next_tick_ms = now + s->tick_ms;
        }
    }
    /* rpc_server_destroy stops loop 0 (the only one handing off) first. */
    adopt_handoffs(l);
    while (l->conns)
        conn_close(l, l->conns);
    return NULL;
}
